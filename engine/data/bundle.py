"""What a data source produces: train/val/test datasets and what the model must agree with.

Plain Python at import (torch is imported where it is used), so that the data-source registry,
which validating a recipe reads, stays free of torch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader, Dataset


class DataError(ValueError):
    """Data that cannot be used; the message says what to fix."""


@dataclass
class DataBundle:
    """``val`` is held out of the training data (see ``DataSpec.val_fraction``) and is what
    decisions are made on; ``test`` is only reported."""
    train: Dataset
    test: Dataset
    num_classes: int
    input_shape: tuple[int, ...]
    description: str
    class_names: Optional[list[str]] = None
    val: Optional[Dataset] = None

    @property
    def selection_split(self) -> str:
        """The split decisions are made on: ``val``, or ``test`` when nothing was held out."""
        return "val" if self.val is not None else "test"

    def split(self, name: str) -> Dataset:
        datasets = {"train": self.train, "val": self.val, "test": self.test}
        if datasets.get(name) is None:
            raise ValueError(f"this data has no '{name}' split")
        return datasets[name]

    @property
    def has_labels(self) -> bool:
        """False for no-data mode (engine.data.synthetic): nothing that needs labels can run."""
        return True

    def collate_fn(self):
        return None

    def loader(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0,
               num_workers: int = 0) -> DataLoader:
        import torch
        from torch.utils.data import DataLoader
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(self.split(split), batch_size=batch_size, shuffle=shuffle,
                          generator=generator, num_workers=num_workers,
                          collate_fn=self.collate_fn())

    def example_input(self, batch_size: int = 1) -> torch.Tensor:
        x, _ = self.test[0]
        return x.unsqueeze(0).expand(batch_size, *x.shape).contiguous()

    @property
    def input_note(self) -> str:
        """What one example input is, where the batch size alone does not say (text: its tokens)."""
        return ""


def sample_subset(dataset: Dataset, count: int) -> Dataset:
    """``count`` samples drawn with a fixed seed (the same every run), in their original order.
    Not the first ``count``: folder-based data sets are sorted by class, and their first samples
    would measure a few classes only."""
    from torch.utils.data import Subset
    if count >= len(dataset):
        return dataset
    return Subset(dataset, sorted(fixed_order(len(dataset))[:count]))


def hold_out_validation(bundle: DataBundle, fraction: float) -> None:
    """Moves ``fraction`` of ``bundle.train`` into ``bundle.val``. The draw uses a fixed seed, not
    the run's, so every run (and every seed) is selected on the same validation samples."""
    from torch.utils.data import Subset
    total = len(bundle.train)
    if fraction <= 0 or total < 2:
        return
    count = max(1, min(round(fraction * total), total - 1))   # both splits keep a sample
    order = fixed_order(total)
    train = bundle.train
    bundle.val = Subset(train, sorted(order[:count]))
    bundle.train = Subset(train, sorted(order[count:]))


def fixed_order(count: int) -> list[int]:
    """A permutation of range(count) that is the same on every run (seed 0, not the run's)."""
    import torch
    return torch.randperm(count, generator=torch.Generator().manual_seed(0)).tolist()

"""Turning a :class:`~engine.config.DataSpec` into train/test datasets. Nothing is downloaded:
MNIST, FashionMNIST and CIFAR-10 are read from a local root in torchvision's own layout."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from engine.config import TEXT_DATA_SOURCES, DataSpec

# The usual normalisation of each named data set, used when the recipe gives none.
DEFAULT_NORMALISATION = {
    "mnist": ([0.1307], [0.3081]),
    "fashionmnist": ([0.2860], [0.3530]),
    "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
    "imagefolder": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}


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


def load_data(spec: DataSpec, vocab: Optional[Any] = None, tokenizer: Optional[Any] = None
              ) -> DataBundle:
    """``vocab``/``tokenizer``: the loaded text model's own (see ``LoadedModel``), used unless the
    spec names one, so text is encoded the way the model was trained."""
    spec.validate()
    if spec.source == "none":
        raise DataError("data.source 'none' is made from the model (Session.open, or "
                        "engine.data.synthetic.synthetic_data)")
    if spec.source in TEXT_DATA_SOURCES:
        from engine.text.sources import load_text_data
        bundle = load_text_data(spec, vocab, tokenizer)
    elif spec.source == "demo":
        from engine.data.distorted_digits import demo_datasets
        train, test = demo_datasets()
        bundle = DataBundle(train, test, 10, (1, 28, 28),
                            "built-in handwritten digits, distorted (UCI 8x8 upscaled to 28x28; "
                            "warped, cluttered, noisy)",
                            [str(i) for i in range(10)])
    else:
        bundle = _load_torchvision(spec)
    hold_out_validation(bundle, spec.val_fraction)
    if spec.max_eval_samples is not None:
        for name in ("val", "test"):
            dataset = getattr(bundle, name)
            if dataset is not None:
                setattr(bundle, name, sample_subset(dataset, spec.max_eval_samples))
    return bundle


def sample_subset(dataset: Dataset, count: int) -> Dataset:
    """``count`` samples drawn with a fixed seed (the same every run), in their original order.
    Not the first ``count``: folder-based data sets are sorted by class, and their first samples
    would measure a few classes only."""
    if count >= len(dataset):
        return dataset
    return Subset(dataset, sorted(_fixed_order(len(dataset))[:count]))


def hold_out_validation(bundle: DataBundle, fraction: float) -> None:
    """Moves ``fraction`` of ``bundle.train`` into ``bundle.val``. The draw uses a fixed seed, not
    the run's, so every run (and every seed) is selected on the same validation samples."""
    total = len(bundle.train)
    if fraction <= 0 or total < 2:
        return
    count = max(1, min(round(fraction * total), total - 1))   # both splits keep a sample
    order = _fixed_order(total)
    train = bundle.train
    bundle.val = Subset(train, sorted(order[:count]))
    bundle.train = Subset(train, sorted(order[count:]))


def _fixed_order(count: int) -> list[int]:
    """A permutation of range(count) that is the same on every run (seed 0, not the run's)."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(0)).tolist()


def _transform(spec: DataSpec, default: str):
    from torchvision import transforms
    mean, std = DEFAULT_NORMALISATION[default]
    mean = spec.mean or (mean if len(mean) == spec.channels else mean[:1] * spec.channels)
    std = spec.std or (std if len(std) == spec.channels else std[:1] * spec.channels)
    steps = [transforms.Resize(spec.image_size), transforms.CenterCrop(spec.image_size)]
    steps.append(transforms.Grayscale(1) if spec.channels == 1 else _ToRGB())
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return transforms.Compose(steps)


class _ToRGB:
    def __call__(self, img):
        return img.convert("RGB")


def _load_torchvision(spec: DataSpec) -> DataBundle:
    from torchvision import datasets
    root = Path(spec.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    transform = _transform(spec, spec.source)
    shape = (spec.channels, spec.image_size, spec.image_size)
    if spec.source == "imagefolder":
        return _image_folder(root, transform, shape)
    cls = {"mnist": datasets.MNIST, "fashionmnist": datasets.FashionMNIST,
           "cifar10": datasets.CIFAR10}[spec.source]
    try:
        train = cls(str(root), train=True, download=False, transform=transform)
        test = cls(str(root), train=False, download=False, transform=transform)
    except RuntimeError as exc:
        raise DataError(f"{cls.__name__} not found under {root} ({exc}). PruneLab never downloads: "
                        f"put the data set there in torchvision's layout "
                        f"(e.g. {root}/{cls.__name__}/raw/ for MNIST, "
                        f"{root}/cifar-10-batches-py/ for CIFAR-10)") from None
    classes = list(getattr(train, "classes", [])) or None
    return DataBundle(train, test, len(classes or range(10)), shape,
                      f"{cls.__name__} from {root}", classes)


def _refuse_empty_files(*datasets: Dataset) -> None:
    """A zero-byte image fails only when its batch is reached, minutes into fine-tuning; a stat of
    every file is cheap, so it is refused at opening, by name. (Other unreadable images are named
    by the error of the batch that reads them, and the model is restored.)"""
    for dataset in datasets:
        base = dataset.dataset if isinstance(dataset, Subset) else dataset
        for path, _ in getattr(base, "samples", []):
            if Path(path).stat().st_size == 0:
                raise DataError(f"image file {path} is empty (0 bytes): remove or replace it")


def _image_folder(root: Path, transform, shape) -> DataBundle:
    """``root/train`` + ``root/val`` (or ``test``) when present, else one folder split 80/20 with a
    fixed seed so the held-out set is the same on every run."""
    from torchvision import datasets
    try:
        test_dir = next((root / d for d in ("val", "test", "valid") if (root / d).is_dir()), None)
        if (root / "train").is_dir() and test_dir is not None:
            train = datasets.ImageFolder(str(root / "train"), transform=transform)
            test = datasets.ImageFolder(str(test_dir), transform=transform)
            if train.classes != test.classes:
                raise DataError(f"class folders differ between {root / 'train'} and {test_dir}")
            classes = train.classes
        else:
            full = datasets.ImageFolder(str(root), transform=transform)
            order = torch.randperm(len(full), generator=torch.Generator().manual_seed(0)).tolist()
            cut = max(1, int(0.8 * len(full)))
            train, test = Subset(full, order[:cut]), Subset(full, order[cut:])
            classes = full.classes
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"{root} is not an image folder (one sub-folder of images per class): "
                        f"{exc}") from None
    _refuse_empty_files(train, test)
    return DataBundle(train, test, len(classes), shape, f"image folder {root}", classes)

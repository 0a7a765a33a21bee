"""``imagefolder``: a folder with one sub-folder of images per class (or train/ and val/ inside)."""
from __future__ import annotations

from pathlib import Path

from engine.data.bundle import DataBundle, DataError
from engine.data.sources.base import DATA_SOURCE_REGISTRY, IMAGE_FIELDS, ROOT_REQUIRED, DataSource
from engine.data.sources.images import data_folder, image_shape, image_transform


@DATA_SOURCE_REGISTRY.register
class ImageFolderData(DataSource):
    name = "imagefolder"
    label = "Image folder (one sub-folder per class)"
    description = ("A folder with one sub-folder of images per class (or train/ and val/ "
                   "inside).")
    requires = ROOT_REQUIRED
    takes = IMAGE_FIELDS

    @classmethod
    def load(cls, spec, vocab=None, tokenizer=None) -> DataBundle:
        root = data_folder(spec)
        return _image_folder(root, image_transform(spec, "imagefolder"), image_shape(spec))


def _refuse_empty_files(*datasets) -> None:
    """A zero-byte image fails only when its batch is reached, minutes into fine-tuning; a stat of
    every file is cheap, so it is refused at opening, by name. (Other unreadable images are named
    by the error of the batch that reads them, and the model is restored.)"""
    from torch.utils.data import Subset
    for dataset in datasets:
        base = dataset.dataset if isinstance(dataset, Subset) else dataset
        for path, _ in getattr(base, "samples", []):
            if Path(path).stat().st_size == 0:
                raise DataError(f"image file {path} is empty (0 bytes): remove or replace it")


def _image_folder(root: Path, transform, shape) -> DataBundle:
    """``root/train`` + ``root/val`` (or ``test``) when present, else one folder split 80/20 with a
    fixed seed so the held-out set is the same on every run."""
    import torch
    from torch.utils.data import Subset
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

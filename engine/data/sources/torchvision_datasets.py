"""``mnist``, ``fashionmnist``, ``cifar10``: torchvision's data sets read from a local root in
torchvision's own layout. Nothing is downloaded. One loader, three registered sources."""
from __future__ import annotations

from typing import ClassVar

from engine.data.bundle import DataBundle, DataError
from engine.data.sources.base import DATA_SOURCE_REGISTRY, IMAGE_FIELDS, ROOT_REQUIRED, DataSource
from engine.data.sources.images import data_folder, image_shape, image_transform


class TorchvisionDataset(DataSource):
    requires = ROOT_REQUIRED
    takes = IMAGE_FIELDS
    dataset_class: ClassVar[str] = ""   # the class in torchvision.datasets

    @classmethod
    def load(cls, spec, vocab=None, tokenizer=None) -> DataBundle:
        from torchvision import datasets
        root = data_folder(spec)
        transform = image_transform(spec, cls.name)
        dataset = getattr(datasets, cls.dataset_class)
        try:
            train = dataset(str(root), train=True, download=False, transform=transform)
            test = dataset(str(root), train=False, download=False, transform=transform)
        except RuntimeError as exc:
            raise DataError(f"{dataset.__name__} not found under {root} ({exc}). PruneLab never "
                            f"downloads: put the data set there in torchvision's layout "
                            f"(e.g. {root}/{dataset.__name__}/raw/ for MNIST, "
                            f"{root}/cifar-10-batches-py/ for CIFAR-10)") from None
        classes = list(getattr(train, "classes", [])) or None
        return DataBundle(train, test, len(classes or range(10)), image_shape(spec),
                          f"{dataset.__name__} from {root}", classes)


@DATA_SOURCE_REGISTRY.register
class MNISTData(TorchvisionDataset):
    name = "mnist"
    label = "MNIST (local folder)"
    description = "MNIST in torchvision's layout under a local folder (never downloaded)."
    dataset_class = "MNIST"


@DATA_SOURCE_REGISTRY.register
class FashionMNISTData(TorchvisionDataset):
    name = "fashionmnist"
    label = "FashionMNIST (local folder)"
    description = "FashionMNIST in torchvision's layout under a local folder."
    dataset_class = "FashionMNIST"


@DATA_SOURCE_REGISTRY.register
class CIFAR10Data(TorchvisionDataset):
    name = "cifar10"
    label = "CIFAR-10 (local folder)"
    description = "CIFAR-10 (cifar-10-batches-py) under a local folder."
    dataset_class = "CIFAR10"

"""What the image sources share: the usual normalisation and the resize/crop/normalise transform."""
from __future__ import annotations

from pathlib import Path

from engine.data.bundle import DataError

# The usual normalisation of each named data set, used when the recipe gives none.
DEFAULT_NORMALISATION = {
    "mnist": ([0.1307], [0.3081]),
    "fashionmnist": ([0.2860], [0.3530]),
    "cifar10": ([0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]),
    "imagefolder": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}


def data_folder(spec) -> Path:
    root = Path(spec.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    return root


def image_transform(spec, default: str):
    from torchvision import transforms
    mean, std = DEFAULT_NORMALISATION[default]
    mean = spec.mean or (mean if len(mean) == spec.channels else mean[:1] * spec.channels)
    std = spec.std or (std if len(std) == spec.channels else std[:1] * spec.channels)
    steps = [transforms.Resize(spec.image_size), transforms.CenterCrop(spec.image_size)]
    steps.append(transforms.Grayscale(1) if spec.channels == 1 else _ToRGB())
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return transforms.Compose(steps)


def image_shape(spec) -> tuple[int, int, int]:
    return (spec.channels, spec.image_size, spec.image_size)


class _ToRGB:
    def __call__(self, img):
        return img.convert("RGB")

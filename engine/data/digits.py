"""The built-in demo data: real handwritten digits shipped in ``resources/digits.npz``.

The digits are the UCI "Optical Recognition of Handwritten Digits" test set as bundled with
scikit-learn (1,797 images, 8x8 pixels, grey levels 0..16; provenance and licence in
``resources/DATA.md``). This module needs only numpy and torch: no scikit-learn, no Qt, and
nothing is downloaded.

From 8x8 to the 1x28x28 input LeNet expects (``upscale_digits``):

1. grey levels 0..16 are scaled to 0..1 (float32);
2. each image is resized to 20x20 with bilinear interpolation (``align_corners=False``);
3. a 4-pixel zero border is added on every side, giving 28x28.

Why this layout: MNIST, which LeNet-5 was designed around, fits each digit into a 20x20 box
centred in a 28x28 frame. The UCI bitmaps were already size-normalised to fill their 32x32
frame before being pooled to 8x8, so mapping the whole 8x8 frame onto the 20x20 box puts the
digits where a LeNet expects them, with a blank margin, so that the 5x5 convolutions see whole
strokes and small shifts (the training augmentation) never push ink off the image. Bilinear
interpolation gives smooth strokes rather than 2.5-pixel blocks; it is a fixed, deterministic
function of the input (no randomness; antialiasing plays no part when upsampling).

Other layouts were tried with ``scripts/train_demo.py --val`` (5 seeds, 1,435 held-out training
images in all): a 24x24 or 16x16 box, bicubic, and nearest-neighbour upscaling all scored within
3 images of this one (1,424-1,427 of 1,435 correct), i.e. within noise, so the MNIST layout
was kept.

Normalisation uses fixed constants (``DIGITS_MEAN``, ``DIGITS_STD``), the mean and standard
deviation of all pixels of the 28x28 (0..1) training-split images; they are stored here rather
than recomputed so that a checkpoint and its input pipeline can never drift apart.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from engine.paths import RESOURCES

DIGITS_PATH = RESOURCES / "digits.npz"

NUM_CLASSES = 10
MAX_GREY = 16  # the UCI bitmaps count "on" pixels in 4x4 blocks: 0..16

# Pixel mean / std of the 1,437 training-split images after upscale_digits(..., 28), i.e.
# before normalisation, over all 1437*28*28 pixels (float64, then rounded).
# Recompute with: python -c "from engine.data.digits import _train_pixel_stats as s; print(s())"
DIGITS_MEAN = 0.1558
DIGITS_STD = 0.2774


class DigitsArrays(NamedTuple):
    images: np.ndarray     # uint8 (1797, 8, 8), 0..16
    labels: np.ndarray     # uint8 (1797,), 0..9
    train_idx: np.ndarray  # int (1437,), sorted indices of the training split
    test_idx: np.ndarray   # int (360,), sorted indices of the held-out test split


def load_digits_arrays(path: str | Path | None = None) -> DigitsArrays:
    """The raw arrays of ``resources/digits.npz`` (or of ``path``), checked for consistency."""
    path = Path(path) if path is not None else DIGITS_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"demo digits not found at {path}; regenerate with `python scripts/make_demo_data.py`"
        )
    with np.load(path, allow_pickle=False) as z:
        missing = {"images", "labels", "train_idx", "test_idx"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}")
        arrays = DigitsArrays(
            images=z["images"], labels=z["labels"], train_idx=z["train_idx"], test_idx=z["test_idx"]
        )
    n = len(arrays.labels)
    if arrays.images.ndim != 3 or arrays.images.shape[1:] != (8, 8) or len(arrays.images) != n:
        raise ValueError(f"{path}: images {arrays.images.shape} do not match {n} labels of 8x8")
    if np.intersect1d(arrays.train_idx, arrays.test_idx).size:
        raise ValueError(f"{path}: train and test splits overlap")
    for name in ("train_idx", "test_idx"):
        idx = getattr(arrays, name)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"{path}: {name} out of range")
    return arrays


def upscale_digits(images: np.ndarray | torch.Tensor, image_size: int = 28) -> torch.Tensor:
    """8x8 grey levels 0..16, shape (N, 8, 8) -> float32 (N, 1, image_size, image_size) in 0..1.

    The digit fills a centred box of ``image_size - 2 * (image_size // 7)`` pixels (20 of 28,
    like MNIST); the rest is a zero border. Deterministic: the same input always gives the
    same output, bit for bit.
    """
    if image_size < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}")
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    if x.ndim != 3 or tuple(x.shape[1:]) != (8, 8):
        raise ValueError(f"expected images of shape (N, 8, 8), got {tuple(x.shape)}")
    x = (x / MAX_GREY).unsqueeze(1)
    pad = image_size // 7
    box = image_size - 2 * pad
    x = F.interpolate(x, size=(box, box), mode="bilinear", align_corners=False)
    x = F.pad(x, (pad, pad, pad, pad), value=0.0)
    return x.clamp_(0.0, 1.0).contiguous()


def normalize_digits(x: torch.Tensor) -> torch.Tensor:
    """(x - DIGITS_MEAN) / DIGITS_STD, for images made by ``upscale_digits``."""
    return (x - DIGITS_MEAN) / DIGITS_STD


def digits_datasets(
    image_size: int = 28, normalize: bool = True, path: str | Path | None = None
) -> tuple[TensorDataset, TensorDataset]:
    """(train_ds, test_ds): TensorDatasets of float32 (N, 1, S, S) images and int64 labels.

    The split is the fixed one stored in the resource file (1,437 train / 360 test).
    ``DIGITS_MEAN``/``DIGITS_STD`` were measured at 28x28; at other sizes they are close
    but not exact.
    """
    arrays = load_digits_arrays(path)
    x = upscale_digits(arrays.images, image_size)
    if normalize:
        x = normalize_digits(x)
    y = torch.as_tensor(arrays.labels.astype(np.int64))
    train_idx = torch.as_tensor(arrays.train_idx.astype(np.int64))
    test_idx = torch.as_tensor(arrays.test_idx.astype(np.int64))
    return (
        TensorDataset(x[train_idx].contiguous(), y[train_idx].contiguous()),
        TensorDataset(x[test_idx].contiguous(), y[test_idx].contiguous()),
    )


def _train_pixel_stats(path: str | Path | None = None) -> tuple[float, float]:
    """Mean and std of the unnormalised 28x28 training pixels (how the constants were made)."""
    train_ds, _ = digits_datasets(28, normalize=False, path=path)
    x = train_ds.tensors[0].double()
    return float(x.mean()), float(x.std())

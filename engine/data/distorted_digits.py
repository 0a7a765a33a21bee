"""The built-in demo data: the shipped UCI digits, distorted so that the task is not trivial.

On the clean digits (``engine.data.digits``) a dense LeNet scores 100% on the 360 test images,
so pruning shows no cost until it falls off a cliff. This module derives a harder data set from
the same shipped file, deterministically and at load time (nothing is downloaded or written):

* every image gets a random affine warp (rotation, anisotropic scale, shear, shift), a smooth
  elastic displacement, a random stroke weight, clutter (fragments of digits of the same
  split) and pixel noise, then is quantised to 8 bits, as a stored image would be;
* the **test** split is ``TEST_VARIANTS`` distortions of each of the 360 test base images
  (2,160 images) and draws its clutter from test images only;
* the **training** split is one distortion of each of the 1,437 training base images, with
  clutter from training images only.

So no test image shares a base digit (or a clutter fragment) with any training image, and the
validation hold-out PruneLab takes from the training split (one image per base digit) shares none
with what is trained on either. All randomness comes from fixed-seed ``torch.Generator``\\ s, one
per split, so every load gives the same tensors. Why and how the settings were chosen:
``resources/DATA.md``.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from engine.data.digits import load_digits_arrays, upscale_digits

IMAGE_SIZE = 28
TEST_VARIANTS = 6          # distortions of each test base image: 6 x 360 = 2,160 test images
TRAIN_SEED = 1             # generator seeds of the two splits (never the run's seed)
TEST_SEED = 2

# Pixel mean / std of the 1,437 distorted training images (0..1, before normalisation), over all
# 1437*28*28 pixels (float64, then rounded). Fixed here so a checkpoint and its input pipeline can
# never drift apart. Recompute with:
#   python -c "from engine.data.distorted_digits import _train_pixel_stats as s; print(s())"
DEMO_MEAN = 0.1728
DEMO_STD = 0.2677


class Distortion(NamedTuple):
    """How strong each distortion is; ``DEMO_DISTORTION`` is what the demo uses."""
    rotation_deg: float = 12.0      # uniform in +/- this
    scale: float = 0.1              # each axis scaled by uniform 1 +/- this
    shear: float = 0.15             # uniform shear factor in +/- this
    shift_px: float = 2.0           # uniform shift in +/- this many pixels per axis
    elastic_px: float = 1.0         # std of the smooth displacement field, in pixels
    elastic_grid: int = 5           # the field is drawn on this coarse grid and upsampled
    stroke: float = 0.3             # ink gamma uniform in 1 +/- this (bolder/thinner strokes)
    clutter_max: int = 2            # 0..this fragments of digits per image
    clutter_size: int = 7           # fragment side, pixels
    clutter_ink: tuple[float, float] = (0.2, 0.5)
    noise_max: float = 0.1          # per-image noise std uniform in 0..this


DEMO_DISTORTION = Distortion()


def distort(clean: torch.Tensor, gen: torch.Generator,
            settings: Distortion = DEMO_DISTORTION) -> torch.Tensor:
    """Clean (N, 1, S, S) images in 0..1 -> distorted images of the same shape, in 0..1.

    Clutter fragments are cut from ``clean`` itself, so a split's clutter comes from that split
    only. Deterministic for a given generator state; the result is quantised to multiples of
    1/255 so that tiny floating-point differences between machines rarely change a pixel.
    """
    n, _, h, w = clean.shape
    s = settings

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=gen)

    # affine warp, as the matrix affine_grid expects (output coords -> input coords, in [-1, 1])
    angle = uniform(-s.rotation_deg, s.rotation_deg, n) * math.pi / 180
    scale = uniform(1 - s.scale, 1 + s.scale, n, 2)
    shear = uniform(-s.shear, s.shear, n)
    shift = uniform(-s.shift_px, s.shift_px, n, 2) * 2 / torch.tensor([w, h])
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shear_m = torch.eye(2).repeat(n, 1, 1)
    shear_m[:, 0, 1] = shear
    linear = rotation @ shear_m / scale.unsqueeze(1)
    theta = torch.cat([linear, shift.unsqueeze(-1)], dim=-1)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)

    # smooth elastic displacement: a coarse random field upsampled bilinearly
    coarse = torch.randn(n, 2, s.elastic_grid, s.elastic_grid, generator=gen) * s.elastic_px
    field = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)
    grid = grid + field.permute(0, 2, 3, 1) * 2 / torch.tensor([w, h])
    x = F.grid_sample(clean, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    gamma = uniform(1 - s.stroke, 1 + s.stroke, n).view(n, 1, 1, 1)
    x = x.clamp(0, 1) ** gamma

    # clutter: fragments of random images of the same split (rarely the image itself), pasted at
    # random places (max blend)
    k = s.clutter_size
    counts = torch.randint(0, s.clutter_max + 1, (n,), generator=gen)
    rows = torch.arange(n).view(n, 1, 1)
    offsets = torch.arange(k)
    clutter = torch.zeros(n, h, w)
    for slot in range(s.clutter_max):
        src = torch.randint(0, n, (n,), generator=gen).view(n, 1, 1)
        sy, sx, ty, tx = (v.view(n, 1, 1) for v in
                          torch.randint(0, h - k + 1, (4, n), generator=gen))
        ink = uniform(*s.clutter_ink, n).view(n, 1, 1) * (counts > slot).view(n, 1, 1)
        patch = clean[src, 0, sy + offsets.view(1, k, 1), sx + offsets.view(1, 1, k)] * ink
        ys, xs = ty + offsets.view(1, k, 1), tx + offsets.view(1, 1, k)
        clutter[rows, ys, xs] = torch.maximum(clutter[rows, ys, xs], patch)
    x = torch.maximum(x, clutter.unsqueeze(1))

    sigma = uniform(0, s.noise_max, n).view(n, 1, 1, 1)
    x = x + sigma * torch.randn(x.shape, generator=gen)
    return (x.clamp(0, 1) * 255).round() / 255


class DemoArrays(NamedTuple):
    """Unnormalised float32 images (N, 1, 28, 28) in 0..1, int64 labels, and for each image the
    index into ``resources/digits.npz`` of the base digit it was made from."""
    train_x: torch.Tensor
    train_y: torch.Tensor
    train_base: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    test_base: torch.Tensor


def make_demo_arrays(path: str | Path | None = None) -> DemoArrays:
    """The demo's two splits, generated from the shipped digits. Made once per process (about a
    second on one core) and shared: treat the tensors as read-only."""
    return _make_demo_arrays(str(Path(path).resolve()) if path is not None else None)


@functools.lru_cache(maxsize=2)
def _make_demo_arrays(path: str | None) -> DemoArrays:
    arrays = load_digits_arrays(path)
    clean = upscale_digits(arrays.images, IMAGE_SIZE)
    labels = torch.as_tensor(arrays.labels.astype(np.int64))
    train_idx = torch.as_tensor(arrays.train_idx.astype(np.int64))
    test_idx = torch.as_tensor(arrays.test_idx.astype(np.int64))

    train_x = distort(clean[train_idx], torch.Generator().manual_seed(TRAIN_SEED))
    test_gen = torch.Generator().manual_seed(TEST_SEED)
    test_clean = clean[test_idx]
    # variant-major: test[v * 360 + j] is variant v of test base image j
    test_x = torch.cat([distort(test_clean, test_gen) for _ in range(TEST_VARIANTS)])
    test_base = test_idx.repeat(TEST_VARIANTS)
    return DemoArrays(train_x, labels[train_idx], train_idx, test_x, labels[test_base], test_base)


def normalize_demo(x: torch.Tensor) -> torch.Tensor:
    """(x - DEMO_MEAN) / DEMO_STD, for images made by ``make_demo_arrays``/``distort``."""
    return (x - DEMO_MEAN) / DEMO_STD


def demo_datasets(normalize: bool = True, path: str | Path | None = None
                  ) -> tuple[TensorDataset, TensorDataset]:
    """(train_ds, test_ds) of the demo: float32 (N, 1, 28, 28) images and int64 labels;
    1,437 training and 2,160 test images."""
    a = make_demo_arrays(path)
    train_x, test_x = (normalize_demo(a.train_x), normalize_demo(a.test_x)) if normalize \
        else (a.train_x.clone(), a.test_x.clone())
    return TensorDataset(train_x, a.train_y), TensorDataset(test_x, a.test_y)


def _train_pixel_stats(path: str | Path | None = None) -> tuple[float, float]:
    """Mean and std of the unnormalised training pixels (how the constants were made)."""
    x = make_demo_arrays(path).train_x.double()
    return float(x.mean()), float(x.std())

"""The demo's distorted digits: large enough, not trivial, reproducible, and free of leakage
between what is trained on, what is validated on and what is tested on."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.data import distorted_digits as DD
from engine.data.digits import load_digits_arrays, upscale_digits
from engine.models.lenet import LeNet
from engine.paths import RESOURCES


@pytest.fixture(scope="module")
def demo():
    return DD.make_demo_arrays()


def test_sizes_shapes_and_classes(demo):
    assert demo.train_x.shape == (1437, 1, 28, 28) and demo.test_x.shape == (2160, 1, 28, 28)
    assert len(demo.test_x) >= 2000
    for x, y in ((demo.train_x, demo.train_y), (demo.test_x, demo.test_y)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.min() >= 0 and x.max() <= 1
        assert set(y.unique().tolist()) == set(range(10))
    # quantised to 8 bits, like a stored image
    assert torch.equal(demo.test_x * 255, (demo.test_x * 255).round())


def test_labels_are_the_base_digits_labels(demo):
    labels = torch.as_tensor(load_digits_arrays().labels.astype(np.int64))
    assert torch.equal(demo.train_y, labels[demo.train_base])
    assert torch.equal(demo.test_y, labels[demo.test_base])


def test_no_test_image_comes_from_a_training_digit(demo):
    arrays = load_digits_arrays()
    assert set(demo.train_base.tolist()) == set(arrays.train_idx.tolist())
    assert set(demo.test_base.tolist()) == set(arrays.test_idx.tolist())
    assert not set(demo.train_base.tolist()) & set(demo.test_base.tolist())
    # one training image per base digit, so the validation hold-out taken from the training split
    # shares no base digit with what is trained on
    assert len(demo.train_base.unique()) == len(demo.train_base)
    assert torch.bincount(demo.test_base, minlength=1797)[demo.test_base].eq(DD.TEST_VARIANTS).all()


def test_clutter_comes_only_from_the_batch_being_distorted():
    blank = torch.zeros(50, 1, 28, 28)
    quiet = DD.Distortion(noise_max=0.0)
    out = DD.distort(blank, torch.Generator().manual_seed(0), quiet)
    assert out.abs().max() == 0
    # with ink in half the batch, the blank half receives fragments of it
    half = torch.zeros(50, 1, 28, 28)
    half[:25, 0, 4:24, 4:24] = 1.0
    out = DD.distort(half, torch.Generator().manual_seed(0), quiet)
    assert (out[25:].flatten(1).amax(1) > 0).sum() >= 5


def test_distortion_changes_the_images_and_variants_differ(demo):
    arrays = load_digits_arrays()
    clean = upscale_digits(arrays.images[demo.test_base[:360].numpy()])
    assert (demo.test_x[:360] - clean).abs().mean() > 0.05
    assert (demo.test_x[:360] - demo.test_x[360:720]).abs().mean() > 0.05
    assert torch.equal(demo.test_base[:360], demo.test_base[360:720])


def test_generation_is_reproducible(demo):
    again = DD._make_demo_arrays.__wrapped__(None)
    for a, b in zip(demo, again):
        assert torch.equal(a, b)


def test_normalisation_constants(demo):
    mean, std = DD._train_pixel_stats()
    assert round(mean, 4) == DD.DEMO_MEAN and round(std, 4) == DD.DEMO_STD
    train_ds, test_ds = DD.demo_datasets()
    assert abs(float(train_ds.tensors[0].double().mean())) < 1e-3
    assert torch.allclose(test_ds.tensors[0], DD.normalize_demo(demo.test_x))


def test_demo_checkpoint_is_good_but_not_perfect():
    """Dense accuracy in [95%, 99.5%]: pruning's cost shows before the cliff."""
    _, test_ds = DD.demo_datasets()
    model = LeNet()
    model.load_state_dict(torch.load(RESOURCES / "lenet_digits.pt", weights_only=True), strict=True)
    model.eval()
    x, y = test_ds.tensors
    with torch.no_grad():
        correct = int((model(x).argmax(1) == y).sum())
    assert 0.95 <= correct / len(y) <= 0.995, correct
    meta = json.loads((RESOURCES / "lenet_digits.json").read_text())
    assert meta["test_correct"] == correct and meta["data"]["n_test"] == len(y) == 2160
    assert meta["data"]["normalize"] == {"mean": DD.DEMO_MEAN, "std": DD.DEMO_STD}

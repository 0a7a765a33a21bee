"""The built-in demo: shipped digits, their clean 28x28 pipeline (the base the demo's distorted
digits are made from), and the pretrained LeNet."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data import digits as D
from engine.models.lenet import LeNet

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "resources"
CKPT = RESOURCES / "lenet_digits.pt"


@pytest.fixture(scope="module")
def arrays():
    return D.load_digits_arrays()


@pytest.fixture(scope="module")
def datasets():
    return D.digits_datasets()


def test_resource_path_is_in_repo():
    assert D.DIGITS_PATH == RESOURCES / "digits.npz"
    assert D.DIGITS_PATH.is_file()


def test_raw_arrays(arrays):
    assert arrays.images.shape == (1797, 8, 8) and arrays.images.dtype == np.uint8
    assert arrays.labels.shape == (1797,) and arrays.labels.dtype == np.uint8
    assert arrays.images.min() == 0 and arrays.images.max() == 16
    assert set(np.unique(arrays.labels).tolist()) == set(range(10))
    assert np.issubdtype(arrays.train_idx.dtype, np.integer)
    assert np.issubdtype(arrays.test_idx.dtype, np.integer)


def test_split_sizes_disjoint_and_complete(arrays):
    tr, te = arrays.train_idx, arrays.test_idx
    assert len(tr) == 1437 and len(te) == 360
    assert len(np.unique(tr)) == len(tr) and len(np.unique(te)) == len(te)
    assert np.intersect1d(tr, te).size == 0
    assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(1797))


def test_split_is_the_fixed_one(arrays):
    # pins the committed split: stratified, 35-37 test images per digit
    counts = np.bincount(arrays.labels[arrays.test_idx], minlength=10)
    assert counts.tolist() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]
    assert arrays.test_idx[:5].tolist() == np.sort(arrays.test_idx)[:5].tolist()


def test_all_classes_in_both_splits(datasets):
    for ds in datasets:
        assert set(ds.tensors[1].unique().tolist()) == set(range(10))


def test_dataset_shapes_and_dtypes(datasets):
    train_ds, test_ds = datasets
    assert isinstance(train_ds, torch.utils.data.TensorDataset)
    for ds, n in ((train_ds, 1437), (test_ds, 360)):
        x, y = ds.tensors
        assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.int64
        assert torch.isfinite(x).all()
    x0, y0 = train_ds[0]
    assert x0.shape == (1, 28, 28) and y0.dtype == torch.int64


def test_upscaling_is_deterministic_and_centred(arrays):
    a = D.upscale_digits(arrays.images[:64])
    b = D.upscale_digits(arrays.images[:64].copy())
    assert torch.equal(a, b)
    assert a.shape == (64, 1, 28, 28) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    # the digit lies in the central 20x20 box; the 4-px border is blank
    border = a.clone()
    border[..., 4:24, 4:24] = 0
    assert border.abs().max() == 0
    # an all-16 image fills the box with ones, an all-0 image stays blank
    full = D.upscale_digits(np.full((1, 8, 8), 16, np.uint8))
    assert torch.allclose(full[0, 0, 4:24, 4:24], torch.ones(20, 20))
    assert D.upscale_digits(np.zeros((1, 8, 8), np.uint8)).abs().max() == 0


def test_datasets_are_reproducible(datasets):
    train2, test2 = D.digits_datasets()
    assert torch.equal(datasets[0].tensors[0], train2.tensors[0])
    assert torch.equal(datasets[1].tensors[1], test2.tensors[1])


def test_normalisation_constants(datasets):
    x = datasets[0].tensors[0].double()
    assert abs(float(x.mean())) < 1e-3
    assert abs(float(x.std()) - 1.0) < 1e-3
    mean, std = D._train_pixel_stats()
    assert round(mean, 4) == D.DIGITS_MEAN and round(std, 4) == D.DIGITS_STD
    raw, _ = D.digits_datasets(normalize=False)
    assert torch.allclose(D.normalize_digits(raw.tensors[0]), datasets[0].tensors[0])


def test_other_image_size():
    train_ds, _ = D.digits_datasets(image_size=32, normalize=False)
    assert train_ds.tensors[0].shape == (1437, 1, 32, 32)


def test_missing_file_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_demo_data"):
        D.load_digits_arrays(tmp_path / "nope.npz")


def test_checkpoint_loads_strictly():
    # its accuracy on the demo's (distorted) test split: tests/test_distorted_digits.py
    sd = torch.load(CKPT, map_location="cpu", weights_only=True)
    assert isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())
    LeNet().load_state_dict(sd, strict=True)


def test_checkpoint_was_not_trained_on_the_validation_split():
    """The shipped checkpoint's training script leaves out exactly the images load_data holds out
    for validation, so choosing on validation is choosing on unseen data."""
    import importlib.util
    from engine.config import DataSpec
    from engine.data.sources import load_data
    spec = importlib.util.spec_from_file_location("train_demo", ROOT / "scripts" / "train_demo.py")
    train_demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_demo)
    data = load_data(DataSpec())
    fit, held = train_demo.validation_draw(len(data.train) + len(data.val))
    assert held.tolist() == data.val.indices and fit.tolist() == data.train.indices
    meta = json.loads((RESOURCES / "lenet_digits.json").read_text())
    assert meta["data"]["n_train"] == len(data.train)
    assert meta["data"]["n_validation_held_out"] == len(data.val)


def test_validation_is_held_out_of_train_with_a_fixed_draw():
    from engine.config import DataSpec
    from engine.data.sources import load_data
    full = load_data(DataSpec(val_fraction=0))
    assert full.val is None and full.selection_split == "test"
    a, b = load_data(DataSpec()), load_data(DataSpec(val_fraction=0.1))
    assert a.selection_split == "val"
    assert len(a.val) == round(0.1 * len(full.train))
    assert len(a.train) + len(a.val) == len(full.train) and len(a.test) == len(full.test)
    # the same samples on every load, disjoint from what is trained on; test untouched
    assert a.val.indices == b.val.indices
    assert not set(a.val.indices) & set(a.train.indices)
    assert sorted(a.val.indices + a.train.indices) == list(range(len(full.train)))


@pytest.mark.parametrize("fraction", [-0.1, 0.6])
def test_val_fraction_out_of_range_is_named(fraction):
    from engine.config import DataSpec, RecipeError
    with pytest.raises(RecipeError, match=r"data.val_fraction must be in \[0, 0.5\]"):
        DataSpec(val_fraction=fraction).validate()


def test_max_eval_samples_draws_across_classes_not_the_first_folders(tmp_path):
    """ImageFolder lists samples class by class; a cap on evaluation samples must not measure the
    first classes only."""
    from PIL import Image
    from engine.config import DataSpec
    from engine.data.sources import load_data
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(4):
            folder = tmp_path / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(10):
                Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / f"{i}.png")
    spec = DataSpec(source="imagefolder", root=str(tmp_path), image_size=8, max_eval_samples=20)
    a, b = load_data(spec), load_data(spec)
    assert len(a.test) == 20 and a.test.indices == b.test.indices   # fixed draw
    labels = {a.test.dataset.targets[i] for i in a.test.indices}
    assert labels == {0, 1, 2, 3}


def test_max_eval_samples_below_one_is_named():
    from engine.config import DataSpec, RecipeError
    with pytest.raises(RecipeError, match="data.max_eval_samples must be at least 1"):
        DataSpec(max_eval_samples=0).validate()

"""What data fits a model (engine.models.fit), read from the model and the files beside it."""
import importlib.util

import pytest
import torch
from torch import nn

from engine.config import DataSpec, ModelSpec, StructuredSpec
from engine.models.architectures import build_architecture
from engine.models.fit import (FitError, first_layer, infer_data_fit, model_fit_for_data,
                               shapes_beside)
from engine.models.sources import load_model
from engine.paths import ROOT
from engine.session import Session


def test_resnet18_takes_3_channel_224_images_and_scores_1000_classes():
    fit = infer_data_fit(build_architecture("resnet18", 1000).eval())
    assert fit.kind == "image"
    assert fit.input_shape == (3, 224, 224)
    assert (fit.channels, fit.image_size, fit.num_classes) == (3, 224, 1000)
    spec = fit.data_spec(DataSpec())   # from the demo digits: an image folder, preset
    assert (spec.source, spec.channels, spec.image_size, spec.root) == ("imagefolder", 3, 224, None)


def test_lenet_takes_1x28x28_digits_and_scores_10_classes():
    fit = infer_data_fit(build_architecture("lenet", 10).eval())
    assert fit.input_shape == (1, 28, 28)
    assert fit.num_classes == 10
    assert any("5x5 convolution on 1 channel" in n for n in fit.notes)


def test_a_cifar_style_stem_is_tried_at_32_first():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 32 * 32, 7))
    fit = infer_data_fit(model)
    assert (fit.input_shape, fit.num_classes) == ((3, 32, 32), 7)


def test_a_flat_mlp_takes_vectors():
    fit = infer_data_fit(nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 4)))
    assert (fit.kind, fit.input_shape, fit.num_classes) == ("features", (20,), 4)
    assert fit.data_spec().source == "none" and fit.data_spec().input_shape == [20]


def test_a_model_nothing_usual_fits_is_reported():
    broken = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Conv2d(5, 2, 3))   # 2 channels into a 5-channel conv
    assert first_layer(broken) is broken[0]
    with pytest.raises(FitError, match="no usual input shape"):
        infer_data_fit(broken)


def test_a_channel_pruned_checkpoint_brings_its_shapes_json(tmp_path):
    model = build_architecture("resnet18", 12).eval()
    session = Session(load_model(ModelSpec(source="torchvision", arch="resnet18", num_classes=12)),
                      _synthetic(model, (3, 64, 64)))
    session.remove_channels(StructuredSpec(ratio=0.5))
    from engine.config import ExportSpec
    paths = session.export(ExportSpec(path=str(tmp_path / "small.pt"), formats=["shapes"],
                                      report=False))
    assert (tmp_path / "small.shapes.json") in paths
    spec = ModelSpec(source="state_dict", path=str(tmp_path / "small.pt"))
    assert shapes_beside(spec) == tmp_path / "small.shapes.json"
    fit = infer_data_fit(torch.nn.Identity(), spec)   # the file says it, not the model
    assert (fit.input_shape, fit.num_classes) == ((3, 64, 64), 12)
    assert "small.shapes.json" in fit.notes[0]


def _synthetic(model, shape):
    from engine.data.synthetic import synthetic_data
    return synthetic_data(DataSpec(source="none", input_shape=list(shape)), model)


def test_a_hugging_face_folder_brings_its_tokenizer_and_tsvs(tmp_path):
    pytest.importorskip("transformers", reason="the optional 'bert' extra is not installed")
    spec = importlib.util.spec_from_file_location("make_tiny_bert", ROOT / "scripts" / "make_tiny_bert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = module.make_tiny_bert(tmp_path / "bert", train_rows=16, test_rows=16, epochs=0,
                                   log=lambda _m: None)
    model_spec = ModelSpec(source="hf", path=str(folder))
    loaded = load_model(model_spec)
    fit = infer_data_fit(loaded.model, model_spec, loaded.tokenizer)
    assert fit.kind == "tokens" and fit.token_input == "mask"
    assert fit.num_classes == loaded.model.num_labels
    assert fit.vocab_size == loaded.model.config.vocab_size
    assert fit.data_spec().source == "hf_tsv"
    assert fit.data_spec().root == str(folder / "data")
    # without its data/ folder: hf_tsv still, with the model folder as the tokenizer
    import shutil
    shutil.rmtree(folder / "data")
    fit = infer_data_fit(loaded.model, model_spec, loaded.tokenizer)
    assert (fit.data_spec().source, fit.data_spec().tokenizer_path) == ("hf_tsv", str(folder))
    assert any("no data/ folder" in n for n in fit.notes)


def test_data_the_demo_cannot_read_proposes_a_usual_classifier():
    fit = model_fit_for_data(5, (3, 224, 224), ModelSpec())
    assert (fit.spec.source, fit.spec.arch, fit.spec.num_classes) == ("torchvision", "resnet18", 5)
    kept = model_fit_for_data(5, (3, 224, 224), ModelSpec(source="torchvision", arch="mobilenet_v2"))
    assert (kept.spec.arch, kept.spec.num_classes) == ("mobilenet_v2", 5)
    digits = model_fit_for_data(10, (1, 28, 28), ModelSpec(source="torchvision", arch="resnet18",
                                                           num_classes=1000))
    assert digits.spec.num_classes == 10


def make_image_folder(root, classes=("cat", "dog", "fox"), per_class=4, size=40, channels=3):
    """A tiny image folder (one sub-folder per class, RGB or greyscale) written under ``root``."""
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            pixels = torch.randint(0, 255, (size, size, 3), generator=g, dtype=torch.uint8)
            image = Image.fromarray(pixels.numpy())
            (image if channels == 3 else image.convert("L")).save(root / c / f"{i}.png")
    return root


def test_a_model_that_does_not_take_the_data_says_what_data_would_fit():
    from engine.models.fit import PairMismatch
    with pytest.raises(PairMismatch, match=r"input of shape \(1, 28, 28\)") as caught:
        Session.open(ModelSpec(source="torchvision", arch="resnet18", num_classes=10), DataSpec())
    assert caught.value.kind == "input"
    assert caught.value.fit.input_shape == (3, 224, 224) and caught.value.fit.num_classes == 10
    assert caught.value.data_classes == 10 and caught.value.data_shape == (1, 28, 28)


def test_data_the_model_does_not_take_says_what_the_data_is(tmp_path):
    from engine.models.fit import PairMismatch
    folder = make_image_folder(tmp_path / "images")
    with pytest.raises(PairMismatch) as caught:
        Session.open(ModelSpec(), DataSpec(source="imagefolder", root=str(folder), channels=3,
                                           image_size=32))
    assert (caught.value.data_classes, caught.value.data_shape) == (3, (3, 32, 32))
    fit = model_fit_for_data(caught.value.data_classes, caught.value.data_shape, ModelSpec())
    session = Session.open(fit.spec, DataSpec(source="imagefolder", root=str(folder), channels=3,
                                              image_size=32))
    assert session.data.num_classes == 3


def test_a_dropped_folder_is_recognised_as_images_text_or_a_model(tmp_path):
    from engine.models.fit import data_spec_for_folder
    images = make_image_folder(tmp_path / "images", per_class=1, size=8)
    assert data_spec_for_folder(images).source == "imagefolder"
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "train.tsv").write_text("good\t1\n")
    assert data_spec_for_folder(tmp_path / "texts").source == "text_tsv"
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    assert data_spec_for_folder(tmp_path / "model") is None
    assert data_spec_for_folder(tmp_path / "texts" / "train.tsv") is None


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_checkpoint_says_its_class_count(tmp_path, suffix):
    from engine.models.fit import checkpoint_classes
    state = build_architecture("lenet", 7).state_dict()
    path = tmp_path / f"lenet{suffix}"
    if suffix == ".pt":
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        from safetensors.torch import save_file
        save_file(state, str(path))
    assert checkpoint_classes(path) == 7
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert checkpoint_classes(tmp_path / "junk.pt") is None


def test_a_dropped_image_folder_is_read_at_its_images_kind_and_size(tmp_path):
    from PIL import Image
    from engine.models.fit import data_spec_for_folder
    small = make_image_folder(tmp_path / "small", per_class=1, size=32)
    assert (data_spec_for_folder(small).channels, data_spec_for_folder(small).image_size) == (3, 32)
    big = make_image_folder(tmp_path / "big", per_class=1, size=300)
    assert data_spec_for_folder(big).image_size == 224
    (tmp_path / "grey" / "train" / "one").mkdir(parents=True)
    (tmp_path / "grey" / "val").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "grey" / "train" / "one" / "0.png")
    grey = data_spec_for_folder(tmp_path / "grey")
    assert (grey.channels, grey.image_size, grey.root) == (1, 28, str(tmp_path / "grey"))

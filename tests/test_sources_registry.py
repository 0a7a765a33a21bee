"""Model and data sources are registries, one module per source: each is documented, recipes
validate against them with the same one-line messages, and adding a source is one class."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from engine.config import (DATA_SOURCES, MODEL_SOURCES, TEXT_DATA_SOURCES, DataSpec, ModelSpec,
                           RecipeError)
from engine.data.sources import DATA_SOURCE_REGISTRY, DataBundle, DataSource, load_data
from engine.models.sources import MODEL_SOURCE_REGISTRY, LoadedModel, ModelSource, load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("registry", [MODEL_SOURCE_REGISTRY, DATA_SOURCE_REGISTRY],
                         ids=["model", "data"])
def test_every_source_has_a_label_a_description_and_its_own_module(registry):
    assert registry.names()
    for source in registry:
        assert source.label.strip() and source.description.strip(), source.name
        assert "\n" not in source.label
        module = Path(sys.modules[source.__module__].__file__)
        assert module.parent.name == "sources", (source.name, module)
        for key in source.requires:
            assert key not in source.takes, (source.name, key)


def test_config_lists_are_the_registries_in_their_order():
    assert MODEL_SOURCES == ("demo", "torchvision", "state_dict", "python", "pickle", "text_demo",
                             "hf")
    assert DATA_SOURCES == ("demo", "imagefolder", "mnist", "fashionmnist", "cifar10",
                            "text_demo", "text_csv", "text_tsv", "hf_tsv", "none")
    assert TEXT_DATA_SOURCES == ("text_demo", "text_csv", "text_tsv", "hf_tsv")


def _message(spec) -> str:
    with pytest.raises(RecipeError) as info:
        spec.validate()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_source_is_one_line_naming_the_choices():
    assert _message(ModelSpec(source="onnx")) == (
        "model.source must be one of demo, torchvision, state_dict, python, pickle, text_demo, "
        "hf; got 'onnx'")
    assert _message(DataSpec(source="imagenet")) == (
        "data.source must be one of demo, imagefolder, mnist, fashionmnist, cifar10, text_demo, "
        "text_csv, text_tsv, hf_tsv, none; got 'imagenet'")
    with pytest.raises(RecipeError, match="^model.source must be one of .*; got 'onnx'$"):
        load_model(ModelSpec(source="onnx"))
    with pytest.raises(RecipeError, match="^data.source must be one of .*; got 'x'$"):
        load_data(DataSpec(source="x"))


@pytest.mark.parametrize("spec, message", [
    (ModelSpec(source="hf"),
     "model.path (a local Hugging Face model folder) is required when model.source is 'hf'"),
    (ModelSpec(source="state_dict"), "model.path is required when model.source is 'state_dict'"),
    (ModelSpec(source="pickle"), "model.path is required when model.source is 'pickle'"),
    (ModelSpec(source="python"), "model.path is required when model.source is 'python'"),
    (ModelSpec(source="python", path="m.py"),
     "model.factory (a class or function name in model.path) is required when model.source is "
     "'python'"),
    (ModelSpec(source="pickle", path="m.pt"),
     "model.source 'pickle' runs code from the file; set model.trust_pickle to true only for a "
     "file you trust"),
    (ModelSpec(source="state_dict", path="w.pt", weights="x.pt"),
     "model.weights (a state_dict file) goes with model.source 'python'; other sources take "
     "their weights from model.path"),
    (ModelSpec(source="torchvision", shapes="s.json"),
     "model.shapes (a layer-shapes JSON) goes with model.source 'state_dict'"),
    (DataSpec(source="mnist"), "data.root (a local folder) is required when data.source is 'mnist'"),
    (DataSpec(source="hf_tsv"),
     "data.root (a local folder) is required when data.source is 'hf_tsv'"),
    (DataSpec(source="demo", input_shape=[3, 8, 8]),
     "data.input_shape is for data.source 'none' (synthetic inputs)"),
    (DataSpec(source="imagefolder", root="r", vocab_path="v.json"),
     "data.vocab_path applies to text data only, not data.source 'imagefolder'"),
])
def test_required_and_misplaced_fields_keep_their_messages(spec, message):
    assert _message(spec) == message


def test_validating_a_recipe_stays_free_of_torch():
    code = ("import sys\n"
            "from engine.config import DataSpec, ModelSpec, MODEL_SOURCES\n"
            "ModelSpec(source='python', path='m.py', factory='Net').validate()\n"
            "DataSpec(source='text_csv', root='r').validate()\n"
            "heavy = [m for m in ('torch', 'torchvision', 'transformers') if m in sys.modules]\n"
            "print(','.join(heavy)); sys.exit(1 if heavy else 0)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"validating imported {result.stdout} {result.stderr}"


class _TinyModel(ModelSource):
    """A throw-away source: the whole of what adding one takes."""
    name = "tiny_linear"
    label = "Tiny linear model"
    description = "A linear layer of model.num_classes outputs, for the registry test."
    requires = {"factory": "model.factory (the tiny model's name)"}

    @classmethod
    def load(cls, spec):
        return LoadedModel(nn.Linear(4, spec.num_classes), f"tiny {spec.factory}")


class _TinyData(DataSource):
    name = "tiny_vectors"
    label = "Tiny vectors"
    description = "Twenty random 4-feature vectors in two classes, for the registry test."

    @classmethod
    def load(cls, spec, vocab=None, tokenizer=None):
        g = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.randn(20, 4, generator=g), torch.arange(20) % 2)
        return DataBundle(data, data, 2, (4,), "tiny vectors")


@pytest.fixture
def tiny_sources():
    MODEL_SOURCE_REGISTRY.register(_TinyModel)
    DATA_SOURCE_REGISTRY.register(_TinyData)
    try:
        yield
    finally:
        MODEL_SOURCE_REGISTRY.unregister(_TinyModel.name)
        DATA_SOURCE_REGISTRY.unregister(_TinyData.name)


def test_a_registered_source_is_validated_listed_and_loaded(tiny_sources):
    import engine.config
    assert engine.config.MODEL_SOURCES[-1] == "tiny_linear"
    assert "tiny_vectors" in engine.config.DATA_SOURCES
    assert "tiny_vectors" not in engine.config.TEXT_DATA_SOURCES
    assert _message(ModelSpec(source="tiny_linear")) == (
        "model.factory (the tiny model's name) is required when model.source is 'tiny_linear'")
    loaded = load_model(ModelSpec(source="tiny_linear", factory="net", num_classes=3), seed=5)
    again = load_model(ModelSpec(source="tiny_linear", factory="net", num_classes=3), seed=5)
    assert loaded.description == "tiny net" and loaded.model.out_features == 3
    assert torch.equal(loaded.model.weight, again.model.weight)   # seeded like every source
    bundle = load_data(DataSpec(source="tiny_vectors", val_fraction=0.25, max_eval_samples=3))
    assert (len(bundle.train), len(bundle.val), len(bundle.test)) == (15, 3, 3)
    with pytest.raises(RecipeError, match="applies to text data only"):
        load_data(DataSpec(source="tiny_vectors", tokenizer_path="t"))

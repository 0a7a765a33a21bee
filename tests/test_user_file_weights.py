"""A model class from the user's Python file with its weights in a separate state_dict file."""
import json

import pytest
import torch
from safetensors.torch import save_file

from engine.config import ModelSpec, Recipe, RecipeError
from engine.models.checkpoints import CheckpointError
from engine.models.lenet import LeNet
from engine.models.sources import load_model
from test_cli import _one_clear_line, run_cli

USER_FILE = ("import torch.nn as nn\n"
             "from engine.models.lenet import LeNet\n"
             "class MyNet(LeNet):\n"
             "    pass\n")


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "mynet.py"
    path.write_text(USER_FILE)
    return path


@pytest.fixture
def trained():
    torch.manual_seed(7)
    return LeNet()


@pytest.mark.parametrize("suffix,wrap", [
    (".pt", lambda sd: sd),
    (".pth", lambda sd: {"model_state_dict": sd, "epoch": 4}),
    (".pt", lambda sd: {f"module.{k}": v for k, v in sd.items()}),
    (".pth", lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}}),
    (".safetensors", None),
])
def test_python_model_takes_its_weights_from_the_file(tmp_path, user_file, trained, suffix, wrap):
    weights = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in trained.state_dict().items()}, str(weights))
    else:
        torch.save(wrap(trained.state_dict()), weights)
    loaded = load_model(ModelSpec(source="python", path=str(user_file), factory="MyNet",
                                  weights=str(weights)))
    state = loaded.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in trained.state_dict().items())
    assert "with weights from" in loaded.description
    assert weights in loaded.source_files   # an export never writes over the weights


def test_weights_that_do_not_fit_are_named(tmp_path, user_file):
    weights = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), weights)
    with pytest.raises(CheckpointError, match="other.pt does not match the architecture"):
        load_model(ModelSpec(source="python", path=str(user_file), factory="MyNet",
                             weights=str(weights)))
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(ModelSpec(source="python", path=str(user_file), factory="MyNet",
                             weights=str(tmp_path / "missing.pt")))


def test_weights_belong_to_python_models_and_resolve_beside_the_recipe(tmp_path, user_file):
    with pytest.raises(RecipeError, match="model.weights"):
        ModelSpec(source="torchvision", arch="resnet18", weights="w.pt").validate()
    recipe_path = tmp_path / "r.json"
    recipe_path.write_text(json.dumps({"model": {"source": "python", "path": "mynet.py",
                                                 "factory": "MyNet", "weights": "w.pt"}}))
    recipe = Recipe.load(recipe_path)
    assert recipe.model.weights == str((tmp_path / "w.pt").resolve())


def test_cli_model_weights_override(tmp_path, user_file, trained):
    weights = tmp_path / "w.pt"
    torch.save({"state_dict": trained.state_dict()}, weights)
    weights_bytes = weights.read_bytes()
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({
        "model": {"source": "python", "path": str(user_file), "factory": "MyNet"},
        "finetune": {"epochs": 0}}))
    _one_clear_line(run_cli(str(recipe), "--quiet", "--no-latency", "--model-weights",
                            str(tmp_path / "missing.pt")), "--model-weights: file not found")
    result = run_cli(str(recipe), "--quiet", "--no-latency", "--model-weights", str(weights))
    assert result.returncode == 0, result.stderr
    assert "MyNet from mynet.py with weights from w.pt" in result.stderr
    assert weights.read_bytes() == weights_bytes   # the input is never modified

import pytest
import torch
from safetensors.torch import save_file

from engine.config import ModelSpec
from engine.models.checkpoints import CheckpointError, read_state_dict
from engine.models.lenet import LeNet
from engine.models.sources import load_model


def _same(a, b):
    return all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {"model": sd, "optimizer": {}},
    lambda sd: {f"module.{k}": v for k, v in sd.items()},
    lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
])
def test_state_dict_wrappers_are_unwrapped(tmp_path, lenet, wrap):
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(lenet.state_dict()), path)
    loaded = load_model(ModelSpec(source="state_dict", arch="lenet", path=str(path))).model
    assert _same(loaded, lenet)


def test_safetensors(tmp_path, lenet):
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in lenet.state_dict().items()}, str(path))
    assert _same(load_model(ModelSpec(source="state_dict", arch="lenet", path=str(path))).model, lenet)


def test_pickled_model_is_refused_as_a_state_dict(tmp_path, lenet):
    path = tmp_path / "whole.pt"
    torch.save(lenet, path)
    with pytest.raises(CheckpointError, match="trust"):
        read_state_dict(path)


def test_pickled_model_loads_only_with_trust(tmp_path, lenet):
    path = tmp_path / "whole.pt"
    torch.save(lenet, path)
    with pytest.raises(ValueError, match="trust_pickle"):
        load_model(ModelSpec(source="pickle", path=str(path)))
    model = load_model(ModelSpec(source="pickle", path=str(path), trust_pickle=True)).model
    assert _same(model, lenet)


def test_mismatched_architecture_is_explained(tmp_path, lenet):
    path = tmp_path / "ckpt.pt"
    torch.save(lenet.state_dict(), path)
    with pytest.raises(CheckpointError, match="does not match the architecture"):
        load_model(ModelSpec(source="state_dict", arch="resnet18", path=str(path)))


def test_garbage_file_is_explained(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_state_dict(path)


def test_torchvision_architecture_by_name_random_init():
    model = load_model(ModelSpec(source="torchvision", arch="resnet18", num_classes=7)).model
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)


def test_unknown_architecture_is_named():
    with pytest.raises(ValueError, match="unknown architecture 'resnet1000'"):
        load_model(ModelSpec(source="torchvision", arch="resnet1000"))


def test_user_python_file_factory(tmp_path):
    src = tmp_path / "mynet.py"
    src.write_text("import torch.nn as nn\n"
                   "class Tiny(nn.Module):\n"
                   "    def __init__(self, num_classes=10):\n"
                   "        super().__init__(); self.fc = nn.Linear(4, num_classes)\n"
                   "    def forward(self, x): return self.fc(x)\n")
    model = load_model(ModelSpec(source="python", path=str(src), factory="Tiny", num_classes=3)).model
    assert model.fc.out_features == 3
    with pytest.raises(CheckpointError, match="has no 'Nope'; it defines Tiny"):
        load_model(ModelSpec(source="python", path=str(src), factory="Nope"))


def test_masked_checkpoint_is_folded(tmp_path, lenet):
    from torch.nn.utils import prune
    prune.l1_unstructured(lenet.fc1, "weight", 0.5)
    path = tmp_path / "masked.pt"
    torch.save(lenet.state_dict(), path)
    sd = read_state_dict(path)
    assert "fc1.weight" in sd and "fc1.weight_orig" not in sd
    assert torch.equal(sd["fc1.weight"], lenet.fc1.weight)

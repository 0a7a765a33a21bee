"""Shared hostile inputs for the CLI and window suites: broken checkpoints, image folders, recipes.
Built once per session in a temporary folder; every case checks that none of them changed."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from engine.models.sources import DEMO_CHECKPOINT

# What most cases start from: the demo, measured on a few samples, no latency timing.
BASE_RECIPE = {"model": {"source": "demo"},
               "data": {"source": "demo", "max_eval_samples": 32},
               "metrics": {"measure_latency": False},
               "prune": {"sparsity": 0.5}}


def _png(path: Path, value: int) -> None:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), color=value).save(path)


def _image_folder(root: Path, per_class: int = 3) -> Path:
    for split in ("train", "test"):
        for c, cls in enumerate(("a", "b")):
            for i in range(per_class):
                _png(root / split / cls / f"{i}.png", 40 + 100 * c + i)
    return root


@pytest.fixture(scope="session")
def hostile_files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile_inputs")
    state = torch.load(DEMO_CHECKPOINT, weights_only=True)
    torch.save(state, d / "lenet.pt")
    nan = {k: v.clone() for k, v in state.items()}
    nan["conv1.weight"][0, 0, 0, :2] = float("nan")
    nan["fc1.weight"][0, 0] = float("inf")
    torch.save(nan, d / "nan.pt")
    torch.save({k: v.half() for k, v in state.items()}, d / "half.pt")
    torch.save({k: v.to(torch.bfloat16) for k, v in state.items()}, d / "bf16.pt")
    (d / "empty.pt").write_bytes(b"")
    (d / "garbage.pt").write_bytes(os.urandom(4096))
    whole = (d / "lenet.pt").read_bytes()
    (d / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    (d / "text.pt").write_text('{"this": "is json"}')
    (d / "garbage.safetensors").write_bytes(b"\xff" * 64)
    torch.save({"note": "no tensors here", "epoch": 3}, d / "no_tensors.pt")
    torch.save({k: torch.zeros(3) for k in state}, d / "wrong_shapes.pt")
    from engine.models.lenet import LeNet
    torch.save(LeNet(), d / "whole_model.pt")   # a pickled module: needs trust
    (d / "evil.pkl").write_bytes(pickle.dumps({"x": 1}))
    (d / "folder.pt").mkdir()
    # image folders
    _image_folder(d / "imgs_ok")
    _png(d / "imgs_one" / "a" / "only.png", 50)                       # 80/20 leaves test empty
    _image_folder(d / "imgs_zero")
    (d / "imgs_zero" / "train" / "a" / "9_empty.png").write_bytes(b"")
    _image_folder(d / "imgs_bad_test")
    (d / "imgs_bad_test" / "test" / "a" / "0.png").write_text("not an image")
    _image_folder(d / "imgs_bad_train", per_class=4)
    (d / "imgs_bad_train" / "train" / "b" / "3.png").write_text("not an image either")
    (d / "imgs_no_classes").mkdir()
    (d / "readonly").mkdir()
    (d / "a_file").write_text("I am a file, not a folder")
    return d


def tree_state(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (and the set of paths, to catch leftovers)."""
    state = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.is_file():
                state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def write_recipe(folder: Path, recipe, name: str = "recipe.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if isinstance(recipe, bytes):
        path.write_bytes(recipe)
    else:
        path.write_text(recipe if isinstance(recipe, str) else json.dumps(recipe))
    return path


def merged(base: dict, **sections) -> dict:
    out = json.loads(json.dumps(base))
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out

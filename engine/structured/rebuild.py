"""A channel-pruned model as data: a state_dict plus a JSON of its layer shapes, no pickle.

A state_dict alone cannot be loaded into the stock architecture once channels are gone (every
shape differs). The shapes JSON records, per layer, the constructor arguments channel removal
changed, and the shape of every state_dict entry. :func:`rebuild_model` builds the stock
architecture by name, sets each layer's recorded width attributes, gives every tensor its recorded
shape, and :func:`load_structured` then loads the weights strictly — so the file is data,
never code.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from engine.io import atomic_write_text
from engine.metrics import effective_state
from engine.models.architectures import build_architecture
from engine.models.checkpoints import CheckpointError, load_into, read_state_dict
from engine.structured.shapes import apply_layer_config, layer_configs

SHAPES_FORMAT = "prunelab-layer-shapes"
SHAPES_VERSION = 1


def shapes_document(model: nn.Module, arch: str, num_classes: int,
                    input_shape: Optional[tuple[int, ...]] = None,
                    state_dict_file: Optional[str] = None) -> dict[str, Any]:
    state = effective_state(model)
    return {"format": SHAPES_FORMAT, "version": SHAPES_VERSION, "arch": arch,
            "num_classes": num_classes,
            "input_shape": list(input_shape) if input_shape is not None else None,
            "state_dict": state_dict_file,
            "layers": layer_configs(model),
            "tensors": {k: list(v.shape) for k, v in state.items()}}


def write_shapes(path: Path, document: dict[str, Any]) -> None:
    atomic_write_text(Path(path), json.dumps(document, indent=1) + "\n")


def read_shapes(path: str | Path) -> dict[str, Any]:
    path = Path(path).expanduser()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(doc, dict) or doc.get("format") != SHAPES_FORMAT:
        raise CheckpointError(f"{path.name} is not a PruneLab layer-shapes file")
    if doc.get("version") != SHAPES_VERSION:
        raise CheckpointError(f"{path.name} has shapes format version {doc.get('version')}; this "
                              f"PruneLab reads version {SHAPES_VERSION}")
    for key in ("arch", "num_classes", "layers", "tensors"):
        if key not in doc:
            raise CheckpointError(f"{path.name} lacks '{key}'")
    return doc


def _resize_tensor(model: nn.Module, key: str, shape: list[int]) -> None:
    """Gives a parameter or buffer its recorded shape (its values come from the state_dict)."""
    owner_name, _, attr = key.rpartition(".")
    owner = model.get_submodule(owner_name) if owner_name else model
    if attr in owner._parameters and owner._parameters[attr] is not None:
        old = owner._parameters[attr]
        owner._parameters[attr] = nn.Parameter(torch.empty(shape, dtype=old.dtype),
                                               requires_grad=old.requires_grad)
    elif attr in owner._buffers and owner._buffers[attr] is not None:
        owner._buffers[attr] = torch.empty(shape, dtype=owner._buffers[attr].dtype)
    else:
        raise CheckpointError(f"cannot resize '{key}': it is neither a parameter nor a buffer")


def rebuild_model(document: dict[str, Any]) -> nn.Module:
    """The architecture named in ``document`` with every layer at its recorded size (weights not
    loaded yet)."""
    arch = document["arch"]
    if not arch:
        raise CheckpointError("the shapes file names no architecture, so the model cannot be rebuilt "
                              "by name")
    try:
        model = build_architecture(arch, int(document["num_classes"]))
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    resize_to(model, document["layers"], document["tensors"], arch)
    return model


def resize_to(model: nn.Module, layers: dict[str, dict[str, Any]], tensors: dict[str, list[int]],
              what: str = "the model", record: str = "the shapes file") -> None:
    """Sets each layer's recorded width attributes and gives every state_dict entry its recorded
    shape (values are loaded afterwards). ``tensors`` must name exactly the model's entries."""
    modules = dict(model.named_modules())
    for name, config in layers.items():
        if name not in modules:
            raise CheckpointError(f"{record} names layer '{name}', which {what} does not have")
        try:
            apply_layer_config(modules[name], config)
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"layer '{name}' of {what} does not fit {record}: it {exc}") from None
    state = model.state_dict()
    missing = [k for k in tensors if k not in state]
    extra = [k for k in state if k not in tensors]
    if missing or extra:
        raise CheckpointError(f"{record} does not describe {what}: "
                              + (f"unknown entries {missing[:3]} " if missing else "")
                              + (f"entries not recorded {extra[:3]}" if extra else ""))
    for key, shape in tensors.items():
        if list(state[key].shape) != list(shape):
            _resize_tensor(model, key, shape)


def load_structured(shapes_path: str | Path, state_dict_path: Optional[str | Path] = None) -> nn.Module:
    """Rebuilds a channel-pruned model from its shapes JSON and state_dict (loaded weights-only and
    strictly). ``state_dict_path`` defaults to the file the JSON names, beside it."""
    shapes_path = Path(shapes_path).expanduser()
    doc = read_shapes(shapes_path)
    if state_dict_path is None:
        if not doc.get("state_dict"):
            raise CheckpointError(f"{shapes_path.name} names no state_dict file; give its path")
        state_dict_path = shapes_path.with_name(doc["state_dict"])
    model = rebuild_model(doc)
    load_into(model, read_state_dict(state_dict_path), Path(state_dict_path).name)
    return model.eval()

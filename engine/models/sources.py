"""Turning a :class:`~engine.config.ModelSpec` into a model, from every source PruneLab supports."""
from __future__ import annotations

import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from engine.config import ModelSpec
from engine.models.architectures import build_architecture
from engine.models.checkpoints import (CheckpointError, load_into, load_pickled_model,
                                       read_state_dict)
from engine.paths import RESOURCES

DEMO_CHECKPOINT = RESOURCES / "lenet_digits.pt"
TEXT_DEMO_CHECKPOINT = RESOURCES / "bilstm_text_demo.pt"


@dataclass
class LoadedModel:
    """A model and what the data must agree with: a text model brings its vocabulary (BiLSTM) or
    tokenizer (Hugging Face), so the data is encoded the way the model was trained."""
    model: nn.Module
    description: str
    source_path: Path | None = None
    arch: str | None = None   # the architecture name it can be rebuilt by (None for user code/pickles)
    vocab: Optional[Any] = None          # engine.text.tokenizer.Vocab
    tokenizer: Optional[Any] = None      # a Hugging Face tokenizer
    class_names: Optional[list[str]] = None
    # other files the model was read from (a channel-pruned export's .shapes.json): never overwritten
    companions: tuple[Path, ...] = ()

    @property
    def source_files(self) -> tuple[Path, ...]:
        """Everything an export must not write over (a folder: nothing inside it)."""
        return tuple(p for p in (self.source_path, *self.companions) if p is not None)


def load_model(spec: ModelSpec, seed: int = 0) -> LoadedModel:
    """Builds the model with torch's RNG seeded from ``seed`` (the recipe's), so a randomly
    initialised model, or any random state a user's factory draws, is the same every time it is
    opened with that seed. The caller's RNG state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)   # construction runs on the CPU
        return _load_model(spec)


def _load_model(spec: ModelSpec) -> LoadedModel:
    spec.validate()
    if spec.source == "demo":
        model = build_architecture("lenet", 10)
        load_into(model, read_state_dict(DEMO_CHECKPOINT), "the demo checkpoint")
        return LoadedModel(model.eval(), "LeNet trained on the built-in digits", DEMO_CHECKPOINT, "lenet")
    if spec.source == "text_demo":
        return _load_bilstm(TEXT_DEMO_CHECKPOINT, spec, "BiLSTM trained on the built-in text demo")
    if spec.source == "hf":
        from engine.text.bert import load_hf_classifier
        model, tokenizer, names = load_hf_classifier(spec.path)
        return LoadedModel(model, f"{type(model.hf_model).__name__} from {Path(spec.path).name}",
                           Path(spec.path), tokenizer=tokenizer, class_names=names)
    if spec.source == "state_dict" and spec.arch == "bilstm":
        return _load_bilstm(Path(spec.path), spec, f"BiLSTM from {Path(spec.path).name}")
    if spec.source == "torchvision":
        model = build_architecture(spec.arch, spec.num_classes, spec.arch_options)
        if spec.path:
            load_into(model, read_state_dict(spec.path), Path(spec.path).name)
            return LoadedModel(model.eval(), f"{spec.arch} with weights from {Path(spec.path).name}",
                               Path(spec.path), spec.arch)
        return LoadedModel(model.eval(), f"{spec.arch} (random init)", None, spec.arch)
    if spec.source == "state_dict" and spec.shapes:
        # a channel-pruned export: rebuilt from its layer-shapes JSON, then loaded weights-only
        from engine.structured.rebuild import load_structured, read_shapes
        arch = read_shapes(spec.shapes)["arch"]
        model = load_structured(spec.shapes, spec.path)
        return LoadedModel(model, f"{arch} (channel-pruned) from {Path(spec.path).name}",
                           Path(spec.path), arch, companions=(Path(spec.shapes),))
    if spec.source == "state_dict":
        model = build_architecture(spec.arch, spec.num_classes, spec.arch_options)
        load_into(model, read_state_dict(spec.path), Path(spec.path).name)
        return LoadedModel(model.eval(), f"{spec.arch} from {Path(spec.path).name}", Path(spec.path),
                           spec.arch)
    if spec.source == "python":
        model = build_from_user_file(Path(spec.path), spec.factory, spec.num_classes)
        return LoadedModel(model.eval(), f"{spec.factory} from {Path(spec.path).name}", Path(spec.path))
    if spec.source == "pickle":
        model = load_pickled_model(spec.path, trusted=spec.trust_pickle)
        return LoadedModel(model.eval(), f"pickled model {Path(spec.path).name}", Path(spec.path))
    raise CheckpointError(f"unknown model source '{spec.source}'")


def _load_bilstm(path: Path, spec: ModelSpec, description: str) -> LoadedModel:
    """A BiLSTM state_dict plus the JSON beside it (hyper-parameters, vocabulary, class names)."""
    from engine.text.bilstm import build_bilstm, read_sidecar
    if not path.is_file():
        hint = " (make it with python scripts/train_text_demo.py)" if path == TEXT_DEMO_CHECKPOINT else ""
        raise CheckpointError(f"checkpoint not found: {path}{hint}")
    try:
        model, vocab, names = build_bilstm(read_state_dict(path), read_sidecar(path), spec.arch_options)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    return LoadedModel(model, description, path, vocab=vocab, class_names=names)


def import_user_file(path: Path):
    """Imports a user's Python file as a fresh module. This runs its code: callers ask for trust."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise CheckpointError(f"Python file not found: {path}")
    name = f"prunelab_user_{abs(hash(str(path)))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise CheckpointError(f"{path.name} cannot be imported as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise CheckpointError(f"{path.name} failed to import: {type(exc).__name__}: {exc}") from None
    return module


def build_from_user_file(path: Path, factory: str, num_classes: int) -> nn.Module:
    module = import_user_file(path)
    target = getattr(module, factory, None)
    if target is None:
        candidates = [n for n, v in vars(module).items()
                      if inspect.isclass(v) and issubclass(v, nn.Module) and v.__module__ == module.__name__]
        raise CheckpointError(f"{path.name} has no '{factory}'"
                              + (f"; it defines {', '.join(candidates)}" if candidates else ""))
    try:
        params = inspect.signature(target).parameters
        model = target(num_classes=num_classes) if "num_classes" in params else target()
    except Exception as exc:
        raise CheckpointError(f"calling {factory}() from {path.name} failed: "
                              f"{type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"{factory}() in {path.name} returned a {type(model).__name__}, "
                              f"not a torch.nn.Module")
    return model

"""``python``: a class or factory in the user's own Python file (importing it runs its code, so the
GUI asks for trust first), with its weights from a separate state_dict file when given."""
from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

from engine.models.sources.base import MODEL_SOURCE_REGISTRY, LoadedModel, ModelSource


@MODEL_SOURCE_REGISTRY.register
class PythonFileModel(ModelSource):
    name = "python"
    label = "Python file (class or factory)"
    description = ("A class or factory function in your own Python file, with its weights from a "
                   "separate state_dict file if given (.pt/.pth/.safetensors, loaded as data). "
                   "Importing the Python file runs its code: you will be asked to confirm you "
                   "trust it.")
    requires = {"path": "model.path",
                "factory": "model.factory (a class or function name in model.path)"}
    takes = ("weights",)

    @classmethod
    def load(cls, spec) -> LoadedModel:
        path = Path(spec.path)
        model = build_from_user_file(path, spec.factory, spec.num_classes)
        if not spec.weights:
            return LoadedModel(model.eval(), f"{spec.factory} from {path.name}", path)
        from engine.models.checkpoints import load_into, read_state_dict
        weights = Path(spec.weights)
        load_into(model, read_state_dict(weights), weights.name)
        return LoadedModel(model.eval(), f"{spec.factory} from {path.name} with weights from "
                           f"{weights.name}", path, companions=(weights,))


def import_user_file(path: Path):
    """Imports a user's Python file as a fresh module. This runs its code: callers ask for trust."""
    from engine.models.checkpoints import CheckpointError
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


def build_from_user_file(path: Path, factory: str, num_classes: int):
    from torch import nn

    from engine.models.checkpoints import CheckpointError
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

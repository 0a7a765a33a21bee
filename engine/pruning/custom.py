"""User-defined pruning methods from a Python file, listed beside the built-in criteria.

Loading a file runs its code, so callers must have the user's trust first (the GUI asks; a recipe
you run is trusted as you wrote it). What a file may define:

* a subclass of ``torch.nn.utils.prune.BasePruningMethod`` (as in the torch tutorial): registered
  under its class name (or its ``PRUNELAB_NAME``). Its ``compute_mask(weight, default_mask)`` makes
  the mask, so the sparsity comes from the method itself; if its constructor takes ``amount`` it is
  given the layer's sparsity. Local scope only; granularity is the method's own business.
* importance functions named ``importance_<name>(weight) -> scores`` (same shape, higher = keep):
  registered as ``<name>``; they work with every granularity and scope like the built-in criteria.

The class docstring / function docstring becomes the method's description (the GUI tooltip).
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, ClassVar, Optional

import torch
from torch.nn.utils import prune

from engine.pruning.base import CRITERIA, Criterion, PruneContext, PruneError
from engine.pruning.targets import PruneTarget

FUNCTION_PREFIX = "importance_"

# resolved path -> (file modification time, names registered from it)
_LOADED: dict[str, tuple[float, list[str]]] = {}


class PluginMethodCriterion(Criterion):
    """A BasePruningMethod wrapped as a criterion that hands out masks instead of scores."""
    method_class: ClassVar[type] = prune.BasePruningMethod
    source: ClassVar[str] = ""
    provides_masks: ClassVar[bool] = True
    granularities: ClassVar[Optional[tuple[str, ...]]] = ("fine",)

    def masks(self, targets: list[PruneTarget], sparsities: dict[str, float],
              ctx: PruneContext) -> list[torch.Tensor]:
        takes_amount = "amount" in inspect.signature(self.method_class.__init__).parameters
        out = []
        for t in targets:
            method = (self.method_class(amount=sparsities[t.name]) if takes_amount
                      else self.method_class())
            weight = t.raw_weight().detach()
            existing = t.mask()
            default = existing.detach().clone() if existing is not None else torch.ones_like(weight)
            try:
                mask = method.compute_mask(weight, default_mask=default)
            except Exception as exc:
                raise PruneError(f"{self.name}.compute_mask failed on {t.name}: "
                                 f"{type(exc).__name__}: {exc}") from None
            _check_shape(self.name, t, mask)
            out.append(mask.float())
        return out


class PluginFunctionCriterion(Criterion):
    """An importance function f(weight) -> scores wrapped as a criterion."""
    function: ClassVar[Callable[[torch.Tensor], torch.Tensor]]
    source: ClassVar[str] = ""

    def scores(self, targets: list[PruneTarget], ctx: PruneContext) -> list[torch.Tensor]:
        out = []
        for t in targets:
            try:
                scores = type(self).function(t.raw_weight().detach().clone())
            except Exception as exc:
                raise PruneError(f"importance function '{self.name}' failed on {t.name}: "
                                 f"{type(exc).__name__}: {exc}") from None
            scores = torch.as_tensor(scores)
            _check_shape(self.name, t, scores)
            out.append(scores.float().to(t.raw_weight().device))
        return out


def _check_shape(name: str, target: PruneTarget, tensor) -> None:
    if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != tuple(target.raw_weight().shape):
        shape = tuple(getattr(tensor, "shape", ()))
        raise PruneError(f"'{name}' returned shape {shape} for {target.name}, which has shape "
                         f"{tuple(target.raw_weight().shape)}")


def _first_line(text: Optional[str]) -> str:
    return " ".join((text or "").strip().split()) or "user-defined pruning method"


def load_plugin(path: str | Path) -> list[str]:
    """Imports ``path`` (runs its code: ask for trust first) and registers its methods as criteria.

    Returns the registered names. Loading the same unchanged file again is a no-op; a changed file
    replaces what it registered before. A name that clashes with a built-in or another file's
    method is refused with a message naming both.
    """
    from engine.models.checkpoints import CheckpointError
    from engine.models.sources import import_user_file

    resolved = Path(path).expanduser().resolve()
    key = str(resolved)
    try:
        mtime = resolved.stat().st_mtime
    except OSError:
        raise PruneError(f"plugin file not found: {resolved}") from None
    if key in _LOADED and _LOADED[key][0] == mtime:
        return list(_LOADED[key][1])
    try:
        module = import_user_file(resolved)
    except CheckpointError as exc:
        raise PruneError(str(exc)) from None

    found: list[type[Criterion]] = []
    for attr, value in vars(module).items():
        if (inspect.isclass(value) and issubclass(value, prune.BasePruningMethod)
                and value.__module__ == module.__name__):
            name = getattr(value, "PRUNELAB_NAME", attr)
            found.append(type(f"Plugin_{attr}", (PluginMethodCriterion,), {
                "name": name, "label": f"{name} ({resolved.name})",
                "description": _first_line(value.__doc__) + f" — BasePruningMethod from "
                               f"{resolved.name}; it sets its own sparsity; local scope only.",
                "method_class": value, "source": key}))
        elif inspect.isfunction(value) and attr.startswith(FUNCTION_PREFIX) and \
                value.__module__ == module.__name__:
            name = attr[len(FUNCTION_PREFIX):]
            found.append(type(f"Plugin_{attr}", (PluginFunctionCriterion,), {
                "name": name, "label": f"{name} ({resolved.name})",
                "description": _first_line(value.__doc__) + f" — importance function from "
                               f"{resolved.name}.",
                "function": staticmethod(value), "source": key}))
    if not found:
        raise PruneError(f"{resolved.name} defines no torch.nn.utils.prune.BasePruningMethod "
                         f"subclass and no function named {FUNCTION_PREFIX}<name>(weight)")

    previous = _LOADED.get(key, (0.0, []))[1]
    for cls in found:
        if cls.name in CRITERIA and cls.name not in previous:
            owner = getattr(CRITERIA.get(cls.name), "source", "") or "the built-in criteria"
            raise PruneError(f"{resolved.name} defines '{cls.name}', a name already taken by "
                             f"{owner}; rename it (or set PRUNELAB_NAME on the class)")
    for name in previous:
        CRITERIA.unregister(name)
    for cls in found:
        CRITERIA.register(cls)
    _LOADED[key] = (mtime, [cls.name for cls in found])
    return [cls.name for cls in found]


def is_plugin(name: str) -> bool:
    return name in CRITERIA and bool(getattr(CRITERIA.get(name), "source", ""))


def loaded_plugins() -> dict[str, list[str]]:
    """file -> method names, for the GUI's list of loaded files."""
    return {path: list(names) for path, (_mtime, names) in _LOADED.items()}

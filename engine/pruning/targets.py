"""Which parameters can be pruned, and their current state.

A prunable parameter is a weight with at least two dimensions (conv, linear, embedding, recurrent
weights); biases and norm scales are left alone. When torch.nn.utils.prune masks are installed the
live parameter is ``<name>_orig`` and the effective weight is the module attribute ``<name>``.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Iterable, Optional

import torch
from torch import nn

from engine.counting import count_nonzero


@dataclass
class PruneTarget:
    name: str            # dotted parameter name as in a plain state_dict, e.g. "conv1.weight"
    module_name: str
    module: nn.Module
    param_name: str      # attribute on the module, e.g. "weight" or "weight_ih_l0"

    @property
    def module_type(self) -> str:
        return type(self.module).__name__

    @property
    def is_masked(self) -> bool:
        return hasattr(self.module, self.param_name + "_mask")

    def weight(self) -> torch.Tensor:
        """The effective weight (mask applied)."""
        if self.is_masked:
            return getattr(self.module, self.param_name + "_orig") * self.mask()
        return getattr(self.module, self.param_name)

    def raw_weight(self) -> torch.Tensor:
        return getattr(self.module, self.param_name + ("_orig" if self.is_masked else ""))

    def mask(self) -> Optional[torch.Tensor]:
        return getattr(self.module, self.param_name + "_mask", None)


@dataclass(frozen=True)
class LayerInfo:
    """A plain description of one prunable parameter, safe to hand to the GUI."""
    name: str
    module_type: str
    shape: tuple[int, ...]
    numel: int
    nonzero: int

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.numel if self.numel else 0.0

    @property
    def density(self) -> float:
        return 1.0 - self.sparsity


def prunable_targets(model: nn.Module) -> list[PruneTarget]:
    targets = []
    for module_name, module in model.named_modules():
        for pname, param in list(module.named_parameters(recurse=False)):
            base = pname[:-5] if pname.endswith("_orig") else pname
            if param.dim() < 2:
                continue
            full = f"{module_name}.{base}" if module_name else base
            targets.append(PruneTarget(full, module_name, module, base))
    return targets


def is_binary_mask(key: str, value: torch.Tensor) -> bool:
    """Whether a state_dict entry or buffer is a torch.nn.utils.prune mask of zeros and ones only.
    Copies that are not live models keep such masks as booleans: a quarter of the memory of the
    float32 mask torch keeps, and converted back exactly."""
    return key.endswith("_mask") and bool(((value == 0) | (value == 1)).all())


@torch.no_grad()
def refresh_masked_weights(model: nn.Module) -> None:
    """Recomputes every masked ``weight = weight_orig * weight_mask`` outside autograd.

    torch.nn.utils.prune only refreshes that attribute in a forward pass; after a training forward
    it is a non-leaf tensor tied to the last graph (which blocks deepcopy), and after loading a
    state_dict it is stale until the next forward. Calling this after either keeps the model
    consistent.
    """
    for t in prunable_targets(model):
        if t.is_masked:
            setattr(t.module, t.param_name, t.raw_weight() * t.mask())


@torch.no_grad()
def inspect_layers(model: nn.Module) -> list[LayerInfo]:
    out = []
    for t in prunable_targets(model):
        w = t.weight()
        out.append(LayerInfo(t.name, t.module_type, tuple(w.shape), w.numel(),
                             count_nonzero(w)))
    return out


def matches(name: str, pattern: str) -> bool:
    """Exact name, glob (``*.attention.self.query.weight``) or regex written as ``re:...``."""
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return name == pattern or fnmatch.fnmatchcase(name, pattern)


def select_targets(model: nn.Module, include: Optional[Iterable[str]] = None,
                   exclude: Optional[Iterable[str]] = None) -> list[PruneTarget]:
    targets = prunable_targets(model)
    if include:
        include = list(include)
        unmatched = [p for p in include if not any(matches(t.name, p) for t in targets)]
        if unmatched:
            raise ValueError(f"no prunable parameter matches {', '.join(repr(p) for p in unmatched)}"
                             f"; prunable ones are: {', '.join(t.name for t in targets[:12])}"
                             + (" ..." if len(targets) > 12 else ""))
        targets = [t for t in targets if any(matches(t.name, p) for p in include)]
    if exclude:
        targets = [t for t in targets if not any(matches(t.name, p) for p in exclude)]
    return targets


@dataclass(frozen=True)
class GroupSparsity:
    """Zeros over a group of parameters taken together (seed 002's "sparsity" of its 12 query
    weights): total zeros / total weights, not the mean of per-layer sparsities."""
    names: tuple[str, ...]
    numel: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0


@torch.no_grad()
def group_sparsity(model: nn.Module, include: Optional[Iterable[str]] = None,
                   exclude: Optional[Iterable[str]] = None) -> GroupSparsity:
    """Sparsity of the effective weights selected like a PruneSpec's include/exclude patterns."""
    targets = select_targets(model, include, exclude)
    numel = zeros = 0
    for t in targets:
        w = t.weight()
        numel += w.numel()
        zeros += w.numel() - count_nonzero(w)
    return GroupSparsity(tuple(t.name for t in targets), numel, zeros)

"""Non-finite (NaN or infinite) weights: found, counted and named, never a reason to refuse a model.

A diverged checkpoint is exactly the one a user wants to open and inspect. PruneLab opens it with a
warning naming each tensor and its counts, draws histograms from the finite values (and says how
many were left out), and states in the comparison table that the model has non-finite weights.

Pruning rule (deterministic, the same for every criterion and granularity): a NaN score counts as
+inf, so a NaN weight is *kept*, as an infinite one is by magnitude. Masking multiplies by zero and
NaN x 0 is NaN, so "pruning" a NaN could not remove it anyway; kept, it stays visible.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NonFinite:
    name: str
    nan: int
    inf: int

    @property
    def count(self) -> int:
        return self.nan + self.inf


@torch.no_grad()
def nonfinite_tensors(model: nn.Module) -> list[NonFinite]:
    """Every floating parameter and buffer holding NaN or +-inf, with its counts."""
    found = []
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    for name, tensor in tensors:
        if not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()):
            continue
        nan = int(torch.isnan(tensor).sum())
        found.append(NonFinite(name, nan, int(torch.isinf(tensor).sum())))
    return found


def nonfinite_count(model: nn.Module) -> int:
    return sum(f.count for f in nonfinite_tensors(model))


def describe_nonfinite(found: list[NonFinite], limit: int = 4) -> str:
    """``conv1.weight (1 NaN), fc1.bias (2 inf) and 3 more tensors``: short enough for one line."""
    def one(f: NonFinite) -> str:
        parts = ([f"{f.nan:,} NaN"] if f.nan else []) + ([f"{f.inf:,} inf"] if f.inf else [])
        return f"{f.name} ({', '.join(parts)})"
    text = ", ".join(one(f) for f in found[:limit])
    return text + (f" and {len(found) - limit} more tensor(s)" if len(found) > limit else "")


def nan_scores_kept(scores: torch.Tensor) -> torch.Tensor:
    """The pruning rule above: NaN importance becomes +inf (kept)."""
    if not scores.is_floating_point() or not bool(torch.isnan(scores).any()):
        return scores   # no copy where there is no NaN (a layer's worth of floats each)
    return torch.where(torch.isnan(scores), torch.full_like(scores, float("inf")), scores)

"""Sensitivity scan: how much accuracy each layer loses when pruned alone, and per-layer ratios
that meet a global target with the least predicted loss.

:func:`scan` prunes one selected layer at a time, at every sparsity of a grid, on a copy of the
model (the caller's model is never touched), and measures accuracy on the validation split (never
the test split, since the scan chooses ratios): plain curves the GUI plots.
:func:`propose_ratios` treats each layer's accuracy drop as independent and additive (the usual
assumption of sensitivity analysis), makes each curve monotone, and solves

    minimise Σ_l drop_l(s_l)   subject to   Σ_l n_l·s_l ≥ target·Σ_l n_l

on the lower convex hull of each layer's (weights pruned, drop) points: taking hull segments in
order of cost per pruned weight is the Lagrangian optimum of the piecewise-linear problem, and the
last segment is taken partially so the target is met exactly (to the weight). The proposal is a
plain dict the user may edit before running it as ``PruneSpec.per_layer``.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from torch import nn
from torch.utils.data import DataLoader

from engine.config import PruneSpec
from engine.data.sources import sample_subset
from engine.metrics import evaluate, model_device
from engine.progress import CancelToken, ProgressFn, ProgressTracker
from engine.pruning.apply import prune_model
from engine.pruning.base import PruneContext, PruneError
from engine.pruning.targets import select_targets

EVAL_BATCH = 256


@dataclass
class SensitivityResult:
    """``curves[layer]`` is [(sparsity, accuracy)], starting at (0, baseline); ``layer_sizes`` the
    weights per layer; the rest says how the scan was made."""
    baseline: float
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    layer_sizes: dict[str, int] = field(default_factory=dict)
    method: str = "l1"
    granularity: str = "fine"
    grid: list[float] = field(default_factory=list)
    split: str = "val"   # the data split the accuracies were measured on


def _eval_loader(data, max_batches: Optional[int]) -> DataLoader:
    """The validation split (the scan chooses ratios, so it must not look at the test split),
    or the test split when nothing was held out."""
    samples = data.split(data.selection_split)
    if max_batches is not None:
        samples = sample_subset(samples, max_batches * EVAL_BATCH)
    return DataLoader(samples, batch_size=EVAL_BATCH, collate_fn=data.collate_fn())


def _swap(model: nn.Module, module_name: str, new: nn.Module) -> None:
    parent_name, _, child = module_name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def scan(model: nn.Module, data, spec: PruneSpec, grid: Sequence[float],
         progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None,
         max_eval_batches: Optional[int] = None,
         log: Callable[[str], None] = lambda _m: None) -> SensitivityResult:
    """Prunes each layer ``spec`` selects alone, at each sparsity of ``grid``, with ``spec``'s
    criterion/granularity/options, and records validation accuracy. ``model`` is not modified."""
    grid = sorted({float(s) for s in grid if s > 0})
    if not grid or any(not 0 < s < 1 for s in grid):
        raise PruneError("the sensitivity grid needs sparsities in (0, 1)")
    work = copy.deepcopy(model)
    targets = select_targets(work, spec.include, spec.exclude)
    if not targets:
        raise PruneError("no parameters selected for the sensitivity scan")
    if any(not t.module_name for t in targets):
        raise PruneError("the sensitivity scan prunes submodules one at a time; this model is a "
                         "single layer")
    loader = _eval_loader(data, max_eval_batches)
    baseline = evaluate(work, loader, data.num_classes, cancel=cancel).accuracy
    result = SensitivityResult(baseline, method=spec.method, granularity=spec.granularity,
                               grid=list(grid), split=data.selection_split)
    if result.split != "val":
        log("sensitivity scan on the test split: data.val_fraction is 0, so nothing was held out")
    point_spec = dataclasses.replace(spec, scope="local", per_layer=None, make_permanent=False,
                                     sensitivity=None, min_density=0.0)  # floor: global only
    tracker = ProgressTracker("Sensitivity scan", len(targets) * len(grid), progress)
    done = 0
    for target in targets:
        pristine = copy.deepcopy(target.module)
        curve = [(0.0, baseline)]
        for sparsity in grid:
            if cancel is not None:
                cancel.raise_if_cancelled()
            _swap(work, target.module_name, copy.deepcopy(pristine))
            ctx = PruneContext(work, seed=spec.seed, data=data, device=model_device(work),
                               cancel=cancel)
            prune_model(work, dataclasses.replace(point_spec, include=[target.name], exclude=None,
                                                  sparsity=sparsity), ctx)
            curve.append((sparsity, evaluate(work, loader, data.num_classes, cancel=cancel).accuracy))
            done += 1
            tracker.update(done, f"{target.name} at {sparsity:.0%}")
        _swap(work, target.module_name, pristine)
        result.curves[target.name] = curve
        result.layer_sizes[target.name] = target.raw_weight().numel()
        log(f"sensitivity {target.name}: " + ", ".join(f"{s:.0%}→{a:.1%}" for s, a in curve[1:]))
    return result


def _hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Lower convex hull of points sorted by x (monotone chain)."""
    hull: list[tuple[float, float]] = []
    for p in points:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) <= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def drop_curve(curve: list[tuple[float, float]], baseline: float) -> list[tuple[float, float]]:
    """(sparsity, accuracy drop), made non-decreasing in sparsity (noise in a scan must not make
    pruning more look cheaper than pruning less)."""
    out, worst = [], 0.0
    for s, acc in sorted(curve):
        worst = max(worst, baseline - acc, 0.0)
        out.append((s, worst))
    if out[0][0] > 0:
        out.insert(0, (0.0, 0.0))
    return out


def predicted_drop(result: SensitivityResult, ratios: dict[str, float]) -> float:
    """Sum over layers of the interpolated accuracy drop at the given sparsities."""
    total = 0.0
    for name, s in ratios.items():
        points = drop_curve(result.curves[name], result.baseline)
        for (s0, d0), (s1, d1) in zip(points, points[1:]):
            if s0 <= s <= s1:
                total += d0 + (d1 - d0) * ((s - s0) / (s1 - s0) if s1 > s0 else 0.0)
                break
        else:
            total += points[-1][1]
    return total


def propose_ratios(result: SensitivityResult, target_sparsity: float,
                   layer_sizes: Optional[dict[str, int]] = None) -> dict[str, float]:
    """Per-layer sparsities meeting ``target_sparsity`` of the scanned layers' weights (by count)
    with the least predicted accuracy drop. Each layer stays within its scanned range; a target
    beyond what the largest grid point allows raises PruneError."""
    sizes = layer_sizes or result.layer_sizes
    names = [n for n in result.curves if sizes.get(n)]
    total = sum(sizes[n] for n in names)
    need = int(math.ceil(target_sparsity * total - 1e-9))
    capacity = {n: int(math.floor(max(s for s, _ in result.curves[n]) * sizes[n] + 1e-9))
                for n in names}
    if need > sum(capacity.values()):
        raise PruneError(f"a {target_sparsity:.0%} target needs more than the scan covers (at most "
                         f"{sum(capacity.values()) / total:.1%} with the largest grid sparsity); "
                         f"extend the grid")
    segments = []   # (cost per weight, order, layer, weights from, weights to, drop from, drop to)
    for name in names:
        hull = _hull([(s * sizes[name], d) for s, d in drop_curve(result.curves[name],
                                                                   result.baseline)])
        for (x0, y0), (x1, y1) in zip(hull, hull[1:]):
            if x1 > x0:
                segments.append(((y1 - y0) / (x1 - x0), len(segments), name, x0, x1))
    segments.sort()
    pruned = {n: 0.0 for n in names}
    remaining = float(need)
    for _cost, _order, name, x0, x1 in segments:
        if remaining <= 0:
            break
        take = min(x1 - x0, remaining)
        pruned[name] = x0 + take
        remaining -= take
    # whole weights: floor everywhere, then hand the shortfall to layers with room, cheapest first
    counts = {n: min(capacity[n], int(math.floor(pruned[n] + 1e-9))) for n in names}
    shortfall = need - sum(counts.values())
    order = [seg[2] for seg in segments] + names
    while shortfall > 0:
        for name in order:
            if shortfall > 0 and counts[name] < capacity[name]:
                counts[name] += 1
                shortfall -= 1
    return {n: counts[n] / sizes[n] for n in names}

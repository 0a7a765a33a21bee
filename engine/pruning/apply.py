"""Running a :class:`~engine.config.PruneSpec` on a model: score, choose, install masks.

Masks are installed with ``torch.nn.utils.prune.custom_from_mask``, so a pruned model carries the
standard ``weight_orig``/``weight_mask`` pair that any PyTorch user recognises, fine-tuning keeps
pruned weights at zero for free (the forward pre-hook multiplies by the mask), and a second round
composes with the first instead of reviving pruned weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import torch
from torch import nn
from torch.nn.utils import prune

from engine.config import PruneSpec
from engine.counting import count_nonzero
from engine.finite import nan_scores_kept
from engine.progress import CancelToken, check_stop
from engine.pruning import builtins as _builtins  # noqa: F401  (registers the built-ins)
from engine.pruning.base import CRITERIA, GRANULARITIES, PruneContext, PruneError
from engine.pruning.targets import PruneTarget, prunable_targets, select_targets
from engine.pruning.threshold import count_for_fraction, lowest_k_mask


@dataclass(frozen=True)
class PruneOutcome:
    """Per-parameter sparsity after the run, plus what was done, for the log."""
    sparsity: dict[str, float]
    summary: str


def target_sparsities(targets: list[PruneTarget], spec: PruneSpec) -> dict[str, float]:
    per_layer = spec.per_layer or {}
    unknown = sorted(set(per_layer) - {t.name for t in targets})
    if unknown:
        raise PruneError(f"per-layer sparsity names {', '.join(unknown)}, which "
                         f"{'is' if len(unknown) == 1 else 'are'} not among the selected parameters")
    return {t.name: per_layer.get(t.name, spec.sparsity) for t in targets}


def _reject_unknown_options(spec: PruneSpec, criterion, granularity) -> None:
    """``prune.options`` is shared by the criterion and the granularity; a key neither declares is a
    typo or a leftover from another method, and running without it would be the wrong experiment."""
    known = {o.name for o in criterion.options} | {o.name for o in granularity.options}
    unknown = sorted(set(spec.options) - known)
    if unknown:
        raise PruneError(f"prune.options: criterion '{spec.method}' with granularity "
                         f"'{spec.granularity}' has no option {', '.join(unknown)}"
                         + (f" (its options: {', '.join(sorted(known))})" if known
                            else " (it takes no options)"))


def criterion_needs_data(spec: PruneSpec) -> bool:
    """Whether the spec's criterion needs training data (gradients, Hessians, slimming); False
    for a plugin's method not loaded yet (it says so itself when it runs)."""
    if spec.method not in CRITERIA:
        return False
    return bool(CRITERIA.create(spec.method, spec.options).needs_data)


@torch.no_grad()
def prune_model(model: nn.Module, spec: PruneSpec, ctx: PruneContext) -> PruneOutcome:
    spec.validate()
    if spec.plugin:
        from engine.pruning.custom import load_plugin
        load_plugin(spec.plugin)
    targets = select_targets(model, spec.include, spec.exclude)
    if not targets:
        raise PruneError("no parameters selected for pruning")
    criterion = CRITERIA.create(spec.method, spec.options)
    granularity = GRANULARITIES.create(spec.granularity, spec.options)
    _reject_unknown_options(spec, criterion, granularity)
    if criterion.granularities is not None and spec.granularity not in criterion.granularities:
        raise PruneError(f"criterion '{spec.method}' works with granularity "
                         f"{' or '.join(criterion.granularities)} only, not '{spec.granularity}'"
                         + (" (it computes each layer's mask itself)" if criterion.provides_masks
                            else ""))
    for target in targets:
        granularity.check(target)
    if criterion.needs_data and ctx.data is None:
        raise PruneError(f"criterion '{spec.method}' needs data to compute gradients")

    if criterion.provides_masks:
        if spec.scope == "global":
            raise PruneError(f"'{spec.method}' computes each layer's mask itself, so it can only "
                             f"be applied locally")
        with torch.enable_grad():
            masks = criterion.masks(targets, target_sparsities(targets, spec), ctx)
        how = "masks from the method itself"
    else:
        with torch.enable_grad():
            scores = criterion.scores(targets, ctx)
        # NaN importance counts as +inf, i.e. kept (engine.finite says why); replaced in the list
        # one layer at a time, so two full sets of scores never coexist (86M floats at BERT-base)
        for i, target in enumerate(targets):
            check_stop(ctx.cancel)   # 0.3 s in all over a pruned BERT-base
            scores[i] = _respect_existing_mask(target, nan_scores_kept(scores[i]))
        check_stop(ctx.cancel)
        masks, how = _masks_from_scores(targets, scores, granularity, spec, ctx)
        del scores   # before the masks are installed: they are not needed any more

    masks = list(masks)
    for i, target in enumerate(targets):
        check_stop(ctx.cancel)   # some layers masked already: the caller's transaction undoes them
        # custom_from_mask makes the mask the weight's dtype itself; each boolean mask is let go
        # as soon as it is installed, so the installed float masks replace it as they grow
        mask, masks[i] = masks[i], None
        prune.custom_from_mask(target.module, target.param_name,
                               mask.to(device=target.raw_weight().device))
        del mask
    if spec.make_permanent:
        make_permanent(model)

    # the module attribute already holds orig * mask (custom_from_mask computed it): no recompute
    result = {t.name: 1.0 - count_nonzero(getattr(t.module, t.param_name)) /
              getattr(t.module, t.param_name).numel() for t in targets}
    summary = (f"pruned {len(targets)} parameter(s), {how}, criterion {spec.method}, "
               f"granularity {spec.granularity}")
    ctx.log(summary)
    return PruneOutcome(result, summary)


def _masks_from_scores(targets, scores, granularity, spec: PruneSpec, ctx: PruneContext):
    if granularity.fixed_sparsity:
        if spec.scope == "global":
            raise PruneError(f"granularity '{spec.granularity}' fixes the sparsity of every group, "
                             f"so it can only be applied locally")
        if spec.per_layer:
            ctx.log(f"granularity '{spec.granularity}' fixes the sparsity; the per-layer dict "
                    f"is not used")
        fixed = granularity.sparsity
        masks = _local_masks(scores, [fixed] * len(scores), granularity, ctx.cancel)
        return masks, f"fixed {fixed:.0%} in every full group; " + _applied_per_layer(
            targets, masks, granularity)
    if spec.scope == "global":
        if spec.per_layer:
            raise PruneError("a per-layer sparsity dict is a local setting; with global scope one "
                             "sparsity applies across the selected layers")
        if not granularity.supports_global:
            raise PruneError(f"granularity '{spec.granularity}' can only be applied locally")
        return (_global_masks(targets, scores, granularity, spec.sparsity, spec.min_density,
                              ctx.cancel),
                f"global {spec.sparsity:.0%}")
    sparsities = target_sparsities(targets, spec)
    masks = _local_masks(scores, [sparsities[t.name] for t in targets], granularity, ctx.cancel)
    return masks, "per-layer" if spec.per_layer else f"local {spec.sparsity:.0%}"


def _local_masks(scores: list, sparsities: list[float], granularity,
                 cancel: Optional[CancelToken] = None) -> list[torch.Tensor]:
    """Each layer's mask from its own scores. Takes the scores over: each layer's entry in
    ``scores`` is dropped once its mask is made, so scores and masks of the whole model are
    never held at once."""
    masks = []
    for i, sparsity in enumerate(sparsities):
        check_stop(cancel)
        masks.append(granularity.local_mask(scores[i], sparsity))
        scores[i] = None
    return masks


def _applied_per_layer(targets, masks, granularity) -> str:
    """What each layer's mask really prunes, and why a layer gets less than the fixed sparsity
    (an N:M group wider than the layer's input): a summary of "50% everywhere" would be wrong."""
    parts = []
    for target, mask in zip(targets, masks):
        applied = 1.0 - count_nonzero(mask) / mask.numel()
        why = granularity.shortfall(mask.shape)
        parts.append(f"{target.name} {applied:.1%}" + (f" ({why})" if why else ""))
    return "applied per layer: " + ", ".join(parts)


def _respect_existing_mask(target: PruneTarget, scores: torch.Tensor) -> torch.Tensor:
    """Already-pruned weights score lowest, so a later round prunes them first and never revives
    them; the requested sparsity is then the layer's total sparsity, not a fraction of what is left."""
    mask = target.mask()
    if mask is None:
        return scores
    return torch.where(mask.bool(), scores.to(torch.float32), torch.tensor(float("-inf")))


def _global_masks(targets, scores, granularity, sparsity: float, min_density: float,
                  cancel: Optional[CancelToken] = None):
    """One threshold across all selected layers (a single kthvalue over the concatenated group
    scores), then a per-layer floor: a layer that would keep less than ``min_density`` of its groups
    keeps exactly that, and the rest of the budget is redistributed over the other layers."""
    shapes = [s.shape for s in scores]
    groups = [granularity.group_scores(s).float().reshape(-1) for s in scores]
    # the scores are taken over (the caller's list is emptied): from here on only their groups
    # are held, and those only until they are gathered into one tensor; the layers' groups are
    # then views of it, so a global ranking holds one copy of the scores (344 MB at BERT-base)
    scores.clear()
    sizes = [g.numel() for g in groups]
    gathered = torch.cat(groups) if groups else torch.empty(0)
    groups = list(gathered.split(sizes))
    total_to_prune = count_for_fraction(sum(sizes), sparsity)
    max_prune = [n - floor_count(n, min_density) for n in sizes]
    if total_to_prune > sum(max_prune):
        # quietly pruning less than asked would report one experiment and run another
        raise PruneError(f"global sparsity {sparsity:.1%} cannot be reached while every layer "
                         f"keeps at least {min_density:.0%} (min density): at most "
                         f"{sum(max_prune) / max(1, sum(sizes)):.1%} can be pruned here. Lower "
                         f"the target or the floor.")
    fixed: dict[int, int] = {}
    while True:
        check_stop(cancel)
        free = [i for i in range(len(groups)) if i not in fixed]
        budget = total_to_prune - sum(fixed.values())
        flat = (gathered if len(free) == len(groups)   # every layer: no second copy
                else torch.cat([groups[i] for i in free]) if free else torch.empty(0))
        pruned = (lowest_k_mask(flat, min(budget, flat.numel()), cancel) if flat.numel()
                  else flat.bool())
        if min_density == 0.0:
            break  # no floor to enforce: skip counting per layer (a pass over every weight)
        counts, offset = {}, 0
        for i in free:
            counts[i] = int(pruned[offset:offset + sizes[i]].sum())
            offset += sizes[i]
        over = [i for i in free if counts[i] > max_prune[i]]
        if not over:
            break
        for i in over:
            fixed[i] = max_prune[i]
    masks, offset = [], 0
    free_pruned = {}
    for i in free:
        free_pruned[i] = pruned[offset:offset + sizes[i]]
        offset += sizes[i]
    for i, (shape, g) in enumerate(zip(shapes, groups)):
        check_stop(cancel)
        layer_pruned = free_pruned[i] if i in free_pruned else lowest_k_mask(g, fixed[i], cancel)
        # boolean: a quarter of a float mask; installing it makes it the weight's dtype
        masks.append(~granularity.expand(layer_pruned, shape))
    return masks


def floor_count(n: int, min_density: float) -> int:
    """⌈min_density·n⌉ exactly: the density as the decimal it was written as (0.49 is 49/100) and
    the ceiling in integers. Floating point gets it wrong both ways: in float32 0.49 x 2,359,296
    rounds down to 1,156,055, and in float64 0.07 x 100 is 7.000000000000001, whose ceiling is 8."""
    density = Fraction(repr(float(min_density)))
    return -(-density.numerator * n // density.denominator)


def make_permanent(model: nn.Module) -> int:
    """Folds every installed mask into its weight (``prune.remove``); returns how many."""
    count = 0
    for target in prunable_targets(model):
        if target.is_masked:
            prune.remove(target.module, target.param_name)
            count += 1
    return count


def has_masks(model: nn.Module) -> bool:
    return any(t.is_masked for t in prunable_targets(model))

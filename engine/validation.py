"""The checks of a recipe that need the model, shared by the CLI and the window.

``Recipe.load``/``Recipe.from_dict`` check everything a recipe says on its own (keys, types,
ranges, nesting). What only the model can answer -- does ``prune.per_layer`` name parameters it
has, do ``include`` patterns match, does ``metrics.show_corner`` exist -- is checked here against
the model's prunable parameter names: by the CLI right after loading (before any measuring), and by
the window (from the model panel's names; its GUI thread never touches the live model) when it
opens a recipe, so an unknown per-layer entry is refused instead of silently pruned at the default.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

from engine.config import Recipe, RecipeError
from engine.pruning.targets import matches

if TYPE_CHECKING:
    from torch import nn


def check_recipe_for_parameters(recipe: Recipe, names: Sequence[str]) -> None:
    """Raises :class:`RecipeError` naming the key that ``names`` (the model's prunable parameters)
    cannot satisfy."""
    try:
        _check_parameters(recipe, list(names))
    except re.error as exc:
        raise RecipeError(f"prune.include/exclude: a 're:' pattern is not a valid regular "
                          f"expression ({exc})") from None


def _check_parameters(recipe: Recipe, names: list[str]) -> None:
    known = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "")
    prune = recipe.prune
    if not recipe.structured.enabled:
        include = prune.include or []
        unmatched = [p for p in include if not any(matches(n, p) for n in names)]
        if unmatched:
            raise RecipeError(f"prune.include: no prunable parameter of this model matches "
                              f"{', '.join(repr(p) for p in unmatched[:3])} (it has: {known})")
        selected = {n for n in names if (not include or any(matches(n, p) for p in include))
                    and not any(matches(n, p) for p in prune.exclude or [])}
        unknown = sorted(set(prune.per_layer or {}) - selected)
        if unknown:
            raise RecipeError(f"prune.per_layer names {', '.join(repr(n) for n in unknown[:3])}"
                              f"{' ...' if len(unknown) > 3 else ''}, not a selected prunable "
                              f"parameter of this model (it has: {known}); fix or remove the entry")
    corner = recipe.metrics.show_corner
    if corner and corner not in names:
        raise RecipeError(f"metrics.show_corner names '{corner}', not a prunable parameter of "
                          f"this model (it has: {known})")


def check_recipe_for_model(recipe: Recipe, model: "nn.Module") -> None:
    from engine.pruning.targets import prunable_targets
    check_recipe_for_parameters(recipe, [t.name for t in prunable_targets(model)])

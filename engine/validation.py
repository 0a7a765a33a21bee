"""The checks of a recipe that need the model, shared by the CLI and the window.

``Recipe.load``/``Recipe.from_dict`` check everything a recipe says on its own (keys, types,
ranges, nesting). What only the model can answer -- does ``prune.per_layer`` name parameters it
has, do ``include`` patterns match, does ``metrics.show_corner`` exist -- is checked here, when the
CLI has loaded the model (before any measuring) and when the window opens a recipe with a model
loaded, so the window can never drop an unknown per-layer entry and prune at the default ratio.
"""
from __future__ import annotations

from torch import nn

from engine.config import Recipe, RecipeError
from engine.pruning.apply import target_sparsities
from engine.pruning.targets import prunable_targets, select_targets


def check_recipe_for_model(recipe: Recipe, model: nn.Module) -> None:
    """Raises :class:`RecipeError` naming the key the model cannot satisfy."""
    if not recipe.structured.enabled:
        try:
            targets = select_targets(model, recipe.prune.include, recipe.prune.exclude)
            target_sparsities(targets, recipe.prune)
        except ValueError as exc:
            raise RecipeError(f"prune: {exc}") from None
    corner = recipe.metrics.show_corner
    if corner and corner not in {t.name for t in prunable_targets(model)}:
        raise RecipeError(f"metrics.show_corner names '{corner}', which this model has no prunable "
                          f"parameter called")

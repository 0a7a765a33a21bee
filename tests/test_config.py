import json

import pytest

from engine.config import PruneSpec, Recipe, RecipeError


def test_recipe_round_trips_through_json():
    recipe = Recipe(name="x", prune=PruneSpec(method="l2", scope="global", sparsity=0.7,
                                              per_layer=None, include=["conv*"]))
    again = Recipe.from_dict(json.loads(recipe.to_json()))
    assert again == recipe


def test_unknown_key_is_named():
    with pytest.raises(RecipeError, match="unknown key in recipe.prune: sparsty"):
        Recipe.from_dict({"prune": {"sparsty": 0.5}})


@pytest.mark.parametrize("data, message", [
    ({"prune": {"sparsity": "high"}}, "recipe.prune.sparsity must be a number"),
    ({"prune": {"sparsity": 1.5}}, "prune.sparsity must be a sparsity in"),
    ({"finetune": {"epochs": 2.5}}, "recipe.finetune.epochs must be a whole number"),
    ({"finetune": {"optimizer": "rmsprop"}}, "finetune.optimizer must be one of sgd, adam"),
    ({"model": {"source": "pickle", "path": "m.pt"}}, "trust_pickle"),
    ({"data": {"source": "mnist"}}, "data.root"),
    ({"prune": {"per_layer": {"fc1.weight": -0.1}}}, r"prune.per_layer\['fc1.weight'\]"),
    ({"export": {"path": "out.onnx"}}, "export.path must end in"),
    ([1, 2], "recipe must be a JSON object"),
])
def test_bad_values_are_rejected_with_their_key(data, message):
    with pytest.raises(RecipeError, match=message):
        Recipe.from_dict(data)


def test_load_resolves_paths_relative_to_the_recipe(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"export": {"path": "out/m.pt"}}))
    recipe = Recipe.load(tmp_path / "r.json")
    assert recipe.export.path == str((tmp_path / "out" / "m.pt").resolve())


def test_load_reports_invalid_json(tmp_path):
    (tmp_path / "r.json").write_text("{ not json")
    with pytest.raises(RecipeError, match="not valid JSON"):
        Recipe.load(tmp_path / "r.json")


def test_shipped_recipes_are_valid():
    from engine.paths import RECIPES
    files = sorted(RECIPES.glob("*.json"))
    assert files
    for f in files:
        Recipe.load(f)

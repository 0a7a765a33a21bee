"""Every shipped method recipe runs end to end on the demo (shortened: few batches, no latency)."""
import dataclasses
import json

import pytest

from engine.config import Recipe
from engine.paths import RECIPES
from engine.pipeline import run_recipe

METHOD_RECIPES = ["lenet_nm_2_4", "lenet_filter_l2", "lenet_taylor", "lenet_obd", "lenet_gradual",
                  "lenet_iterative", "lenet_at_init", "lenet_sensitivity",
                  "lenet_custom_every_other"]


def _shortened(name: str) -> Recipe:
    recipe = Recipe.load(RECIPES / f"{name}.json")
    recipe.metrics = dataclasses.replace(recipe.metrics, measure_latency=False)
    recipe.finetune = dataclasses.replace(recipe.finetune, max_batches_per_epoch=4,
                                          epochs=min(recipe.finetune.epochs, 2))
    if recipe.prune.method == "obd":
        recipe.prune.options["exact_max_params"] = 200   # conv1 exact, the rest estimated
    if recipe.prune.sensitivity is not None:
        recipe.prune.sensitivity.max_eval_batches = 1
    return recipe


@pytest.mark.parametrize("name", METHOD_RECIPES)
def test_recipe_runs_end_to_end(name):
    recipe = _shortened(name)
    logs = []
    result = run_recipe(recipe, log=logs.append)
    sparsity = result.layer_sparsity
    assert result.original.accuracy > 0.95
    assert result.final.nonzero_params < result.original.nonzero_params
    assert 0.0 <= result.final.accuracy <= 1.0
    if name == "lenet_nm_2_4":
        assert sparsity == {"conv1.weight": 0.0, "conv2.weight": pytest.approx(1 / 3),
                            "fc1.weight": 0.5, "fc2.weight": 0.5, "fc3.weight": 0.5}
    elif name == "lenet_filter_l2":
        assert "fc3.weight" not in sparsity
        assert sparsity["conv2.weight"] == pytest.approx(5 / 16)   # round(0.3 * 16) filters
    elif name in ("lenet_taylor", "lenet_obd"):
        assert all(s == pytest.approx(0.7, abs=1e-3) for s in sparsity.values())
        if name == "lenet_obd":
            assert any("conv1.weight" in m and "exact" in m for m in logs)
            assert any("fc1.weight" in m and "Hutchinson" in m for m in logs)
    elif name in ("lenet_gradual", "lenet_iterative"):
        trace = result.schedule.sparsity_trace
        rising = trace[:-1] if result.schedule.stopped else trace   # a stop reverts one round
        assert [v for _, v in rising] == sorted(v for _, v in rising)
        if result.schedule.stopped:
            assert "below the floor" in result.schedule.stopped
            kept = result.schedule.rounds[-2].sparsity if len(result.schedule.rounds) > 1 else 0.0
            assert trace[-1][1] == pytest.approx(kept)
        else:
            assert trace[-1][1] == pytest.approx(0.85, abs=1e-3)
    elif name == "lenet_at_init":
        assert result.schedule.kind == "at_init" and result.schedule.epochs
    elif name == "lenet_sensitivity":
        sizes = result.sensitivity.layer_sizes
        assert set(result.proposed_ratios) == set(sizes)
        pruned = sum(sparsity[k] * sizes[k] for k in sizes)
        assert pruned >= 0.8 * sum(sizes.values()) - 0.5
    elif name == "lenet_custom_every_other":
        assert all(s == 0.5 for s in sparsity.values())


def test_recipe_fields_round_trip_and_old_recipes_still_load(tmp_path):
    recipe = Recipe.load(RECIPES / "lenet_gradual.json")
    assert recipe.schedule.kind == "gradual" and recipe.schedule.options["every"] == 5
    again = Recipe.from_dict(json.loads(recipe.to_json()))
    assert again == recipe
    old = Recipe.load(RECIPES / "lenet_seed001.json")
    assert old.schedule.kind == "oneshot" and old.prune.plugin is None
    custom = Recipe.load(RECIPES / "lenet_custom_every_other.json")
    assert custom.prune.plugin.endswith("examples/every_other.py")   # relative to the recipe


def test_bad_schedule_and_sensitivity_fields_are_named():
    from engine.config import RecipeError
    with pytest.raises(RecipeError, match="schedule.kind must be one of"):
        Recipe.from_dict({"schedule": {"kind": "cubic"}})
    with pytest.raises(RecipeError, match="use scope 'local'"):
        Recipe.from_dict({"prune": {"scope": "global", "sensitivity": {}}})
    with pytest.raises(RecipeError, match=r"prune.sensitivity.grid\[0\]"):
        Recipe.from_dict({"prune": {"sensitivity": {"grid": [1.5]}}})


def test_cli_reports_the_schedule_and_writes_the_sparsity_trace(tmp_path, capsys):
    from engine.cli import main
    recipe = json.loads((RECIPES / "lenet_gradual.json").read_text())
    recipe["finetune"]["max_batches_per_epoch"] = 5
    recipe["finetune"]["epochs"] = 2
    path = tmp_path / "gradual.json"
    path.write_text(json.dumps(recipe))
    out_json = tmp_path / "out.json"
    assert main([str(path), "--no-latency", "--quiet", "--json", str(out_json)]) == 0
    assert "Schedule gradual: step 0 0.0%" in capsys.readouterr().out
    document = json.loads(out_json.read_text())
    trace = document["sparsity_trace"]
    assert trace[0] == [0, 0.0] and trace[-1][0] == 10
    # a schedule prunes and trains in turns: there is no single after-pruning table to report
    assert document["after_prune"] is None and document["table"]
    assert trace[-1][1] == pytest.approx(0.85, abs=1e-3)

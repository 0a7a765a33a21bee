"""The reference tutorial's LeNet workflow, end to end on the built-in demo."""
from dataclasses import replace

import pytest
import torch

from engine.config import Recipe
from engine.data.sources import load_data
from engine.metrics import evaluate
from engine.models.lenet import LeNet
from engine.paths import RECIPES
from engine.pipeline import run_recipe


@pytest.fixture(scope="module")
def seed001(tmp_path_factory):
    recipe = Recipe.load(RECIPES / "lenet_seed001.json")
    out = tmp_path_factory.mktemp("export") / "lenet_pruned.pt"
    recipe.export = replace(recipe.export, path=str(out))
    recipe.metrics = replace(recipe.metrics, latency_runs=5, latency_warmup=1)
    epochs = []
    result = run_recipe(recipe, on_epoch=epochs.append)
    return recipe, result, epochs, out


def _row(table, name):
    return next(r for r in table if r.metric.startswith(name))


def test_pruning_hurts_and_fine_tuning_recovers(seed001):
    recipe, result, epochs, _ = seed001
    # the demo is hard enough that the dense model is good but not perfect (97.87% of 2,160)
    assert 0.95 <= result.original.accuracy <= 0.995
    assert result.after_prune.accuracy < result.original.accuracy - 0.10
    assert len(epochs) == recipe.finetune.epochs == 5
    # Fine-tuning wins back most of what pruning lost, not all: the kept epoch is chosen on
    # validation data, never on test, and seeds 0-5 measured 92.2-94.2% against a dense 97.87%
    # (3.7-5.7 points below; README, "Honest numbers").
    lost = result.original.accuracy - result.after_prune.accuracy
    assert result.original.accuracy - result.final.accuracy <= 0.06
    assert result.final.accuracy - result.after_prune.accuracy >= 0.9 * lost
    assert result.finetune.best_epoch is not None
    kept = result.finetune.epochs[result.finetune.best_epoch - 1]
    assert kept.val is not None and kept.test.accuracy == pytest.approx(result.final.accuracy)


def test_table_tells_the_honest_story(seed001):
    _, result, _, _ = seed001
    nonzero = _row(result.table, "Non-zero parameters")
    assert 3.5 < nonzero.ratio < 4.2          # about a quarter of the weights remain
    assert _row(result.table, "Parameters").ratio == 1.0   # masks do not shrink tensors
    assert _row(result.table, "MACs").ratio == 1.0         # ...nor what dense kernels execute
    assert _row(result.table, "Effective MACs").ratio > 3.0
    assert _row(result.table, "Size (sparse storage)").ratio > 2.5
    assert _row(result.table, "Latency").pruned > 0
    sparsity = result.layer_sparsity
    for name, s in {"conv1.weight": .85, "conv2.weight": .8, "fc1.weight": .75, "fc2.weight": .7,
                    "fc3.weight": .8}.items():
        assert sparsity[name] == pytest.approx(s, abs=0.01)


def test_export_loads_into_plain_lenet_with_the_reported_accuracy(seed001):
    _, result, _, out = seed001
    fresh = LeNet()
    fresh.load_state_dict(torch.load(out, weights_only=True), strict=True)
    data = load_data(Recipe().data)
    accuracy = evaluate(fresh, data.loader("test", 256), 10).accuracy
    assert accuracy == pytest.approx(result.final.accuracy, abs=1e-9)
    assert out.with_name("lenet_pruned.report.json").is_file()

"""Seed 000's pruning recipes, end to end on the shipped text demo, and their fidelity to the
torch.nn.utils.prune calls the tutorial makes."""
import json

import pytest
import torch
from torch.nn.utils import prune

from engine.cli import main as cli_main
from engine.config import Recipe
from engine.paths import RECIPES
from engine.session import Session

SEED000 = {
    "bilstm_seed000_global_l1_70.json": {
        "names": ["embedding.weight", "lstm.weight_ih_l0", "lstm.weight_hh_l0", "fc.weight"],
        "group_sparsity": 0.7},
    "bilstm_seed000_fc_random_95.json": {"names": ["fc.weight"], "group_sparsity": 0.95},
    "bilstm_seed000_fc_l1_95.json": {"names": ["fc.weight"], "group_sparsity": 0.95},
}


def open_session(recipe: Recipe) -> Session:
    return Session.open(recipe.model, recipe.data, recipe.metrics, recipe.seed)


@pytest.mark.parametrize("name", sorted(SEED000))
def test_seed000_recipe_runs_end_to_end(name, tmp_path, capsys):
    expected = SEED000[name]
    export = tmp_path / "pruned.pt"
    report = tmp_path / "result.json"
    rc = cli_main([str(RECIPES / name), "--no-latency", "--quiet", "--export", str(export),
                   "--json", str(report)])
    out = capsys.readouterr().out
    assert rc == 0, out
    result = json.loads(report.read_text())
    rows = {row["metric"]: row for row in result["table"]}
    for metric in ("Accuracy", "Macro F1"):
        assert 0 <= rows[metric]["pruned"] <= 100 and rows[metric]["original"] > 90
    assert sorted(result["layer_sparsity"]) == sorted(expected["names"])
    group = result["group_sparsity"]
    # exact counts: round(sparsity * weights) zeros, as torch.nn.utils.prune computes them
    assert group["zeros"] == round(expected["group_sparsity"] * group["numel"])
    assert f"Sparsity of the pruned group ({len(expected['names'])} parameter(s)" in out
    state = torch.load(export, weights_only=True)
    masks = torch.load(tmp_path / "pruned.masks.pt", weights_only=True)
    assert sorted(masks) == sorted(expected["names"])
    for param, mask in masks.items():  # the export is folded: zeros exactly where the mask is
        assert torch.equal(state[param] != 0, mask & (state[param] != 0))
        assert int((~mask).sum()) == round(result["layer_sparsity"][param] * mask.numel())


def _reference_masks(model, params, method, amount):
    targets = [(dict(model.named_modules())[n.rsplit(".", 1)[0]], n.rsplit(".", 1)[1]) for n in params]
    if len(targets) > 1:
        prune.global_unstructured(targets, pruning_method=method, amount=amount)
    else:
        method.apply(*targets[0], amount=amount)
    return {n: getattr(m, p + "_mask").bool() for n, (m, p) in zip(params, targets)}


def _engine_masks(session, params):
    modules = dict(session.model.named_modules())
    return {n: getattr(modules[n.rsplit(".", 1)[0]], n.rsplit(".", 1)[1] + "_mask").bool()
            for n in params}


def test_global_l1_70_equals_torch_global_unstructured():
    recipe = Recipe.load(RECIPES / "bilstm_seed000_global_l1_70.json")
    session = open_session(recipe)
    reference = _reference_masks(session.original, recipe.prune.include, prune.L1Unstructured, 0.7)
    session.prune(recipe.prune)
    ours = _engine_masks(session, recipe.prune.include)
    for name in recipe.prune.include:
        assert torch.equal(ours[name], reference[name]), name
    total = sum(m.numel() for m in ours.values())
    assert sum(int((~m).sum()) for m in ours.values()) == round(0.7 * total)


def test_fc_l1_95_equals_torch_l1_unstructured():
    recipe = Recipe.load(RECIPES / "bilstm_seed000_fc_l1_95.json")
    session = open_session(recipe)
    reference = _reference_masks(session.original, ["fc.weight"], prune.L1Unstructured, 0.95)
    session.prune(recipe.prune)
    assert torch.equal(_engine_masks(session, ["fc.weight"])["fc.weight"], reference["fc.weight"])


def test_fc_random_95_is_exact_and_reproducible():
    recipe = Recipe.load(RECIPES / "bilstm_seed000_fc_random_95.json")
    first, second = open_session(recipe), open_session(recipe)
    first.prune(recipe.prune)
    second.prune(recipe.prune)
    a = _engine_masks(first, ["fc.weight"])["fc.weight"]
    assert torch.equal(a, _engine_masks(second, ["fc.weight"])["fc.weight"])
    assert int((~a).sum()) == round(0.95 * a.numel())
    from dataclasses import replace
    third = open_session(recipe)
    third.prune(replace(recipe.prune, seed=recipe.prune.seed + 1))
    assert not torch.equal(a, _engine_masks(third, ["fc.weight"])["fc.weight"])

"""Seed 000's custom method (a BasePruningMethod that zeroes every other element), from a recipe,
on the BiLSTM text demo, through the user-method-file mechanism (engine.pruning.custom)."""
import json

import torch

from engine.cli import main as cli_main
from engine.paths import RECIPES

RECIPE = RECIPES / "bilstm_seed000_every_other.json"


def test_every_other_recipe_zeroes_exactly_the_even_positions(tmp_path, capsys):
    export = tmp_path / "pruned.pt"
    report = tmp_path / "result.json"
    rc = cli_main([str(RECIPE), "--no-latency", "--quiet", "--export", str(export),
                   "--json", str(report)])
    out = capsys.readouterr().out
    assert rc == 0, out
    result = json.loads(report.read_text())
    assert list(result["layer_sparsity"]) == ["fc.weight"]
    mask = torch.load(tmp_path / "pruned.masks.pt", weights_only=True)["fc.weight"].reshape(-1)
    expected = torch.ones_like(mask)
    expected[::2] = False  # the tutorial's mask.view(-1)[::2] = 0
    assert torch.equal(mask, expected)
    weight = torch.load(export, weights_only=True)["fc.weight"].reshape(-1)
    assert (weight[::2] == 0).all() and (weight[1::2] != 0).all()
    assert result["group_sparsity"]["zeros"] == (mask.numel() + 1) // 2
    rows = {row["metric"]: row for row in result["table"]}
    assert rows["Accuracy"]["original"] > 90 and rows["Accuracy"]["pruned"] is not None
    assert rows["Macro F1"]["pruned"] is not None

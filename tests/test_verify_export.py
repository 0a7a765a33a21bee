"""Verify export: each written format is loaded in a fresh process, as a user elsewhere would, and
must compute what the live model computes."""

import torch
import torchvision
from torch import nn

from engine.config import StructuredSpec
from engine.export import save_tensors
from engine.models.lenet import LeNet
from engine.pruning.masks import global_magnitude_prune
from engine.structured.exporters import export_all
from engine.structured.remove import prune_channels
from engine.verify import TOLERANCE, verify_export


def pruned_lenet():
    torch.manual_seed(0)
    model = LeNet().eval()
    with torch.no_grad():   # as the engine prunes: the masked weight is no autograd result
        global_magnitude_prune([(m, "weight") for m in model.modules()
                                if isinstance(m, (nn.Conv2d, nn.Linear))], 0.6)
    return model


def test_every_format_of_a_masked_model_loads_and_matches(tmp_path):
    model = pruned_lenet()
    x = torch.randn(3, 1, 28, 28)
    kinds = ["state_dict", "torchscript", "onnx", "pickle"]
    written = export_all(model, tmp_path / "m.safetensors", kinds, x[:1], arch="lenet", num_classes=10)
    report = verify_export(model, written, kinds, x, "lenet", 10, runs=2)
    assert [c.kind for c in report.checks] == kinds
    assert report.ok, report.lines()
    for check in report.checks:
        assert check.skipped is None
        assert check.max_abs_diff is not None and check.max_abs_diff <= TOLERANCE
        assert check.latency_ms > 0
    assert "strict=True" in report.checks[0].snippet and "m.safetensors" in report.checks[0].snippet


def test_a_corrupted_export_is_an_error_not_a_warning(tmp_path):
    model = pruned_lenet()
    x = torch.randn(2, 1, 28, 28)
    written = export_all(model, tmp_path / "m.pt", ["state_dict"], x[:1], arch="lenet", num_classes=10)
    state = torch.load(written[0], weights_only=True)
    state["fc3.bias"] = state["fc3.bias"] + 0.5     # what a bad copy or a wrong fold would do
    save_tensors(state, written[0])
    report = verify_export(model, written, ["state_dict"], x, "lenet", 10, runs=1)
    assert not report.ok
    assert "differ" in report.checks[0].error and report.checks[0].max_abs_diff > 0.4
    # a file that does not load at all
    written[0].write_bytes(b"not a checkpoint")
    report = verify_export(model, written, ["state_dict"], x, "lenet", 10, runs=1)
    assert not report.ok and "does not load" in report.checks[0].error


def test_a_channel_pruned_model_is_checked_through_its_shapes_file(tmp_path):
    torch.manual_seed(0)
    original = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    smaller = prune_channels(original, x[:1], StructuredSpec(ratio=0.5)).model.eval()
    kinds = ["state_dict", "shapes"]
    written = export_all(smaller, tmp_path / "r.pt", kinds, x[:1], arch="resnet18", num_classes=10)
    report = verify_export(smaller, written, kinds, x, "resnet18", 10, channel_pruned=True, runs=1)
    state_dict, shapes = report.checks
    assert state_dict.skipped and "shapes" in state_dict.skipped
    with torch.no_grad():
        scale = max(1.0, float(smaller(x).abs().max()))
    assert shapes.ok and shapes.max_abs_diff <= TOLERANCE * scale
    assert report.ok


def test_cli_verify_checks_every_written_format(tmp_path):
    import json
    from engine.cli import main
    out = tmp_path / "lenet.pt"
    report = tmp_path / "run.json"
    code = main(["recipes/lenet_seed001.json", "--epochs", "0", "--no-latency", "--quiet",
                 "--export", str(out), "--verify", "--json", str(report)])
    assert code == 0
    verification = json.loads(report.read_text())["verification"]
    assert verification["ok"] is True
    [check] = verification["checks"]
    assert check["kind"] == "state_dict" and check["max_abs_diff"] <= TOLERANCE
    assert check["error"] is None and check["skipped"] is None


def test_cli_verify_needs_an_export(tmp_path, capsys):
    from dataclasses import replace
    from engine.cli import main
    from engine.config import Recipe
    recipe = Recipe.load("recipes/lenet_seed001.json")
    recipe.export = replace(recipe.export, path=None)
    recipe.save(tmp_path / "no_export.json")
    assert main([str(tmp_path / "no_export.json"), "--verify", "--quiet"]) == 2
    assert "--verify" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_export.json"]

"""CLI error paths: one clear line on stderr, a non-zero exit, never a traceback."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--headless", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def _one_clear_line(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in result.stderr
    assert any(fragment in ln for ln in lines), result.stderr
    assert lines[-1].startswith("prunelab: ")


def test_missing_recipe(tmp_path):
    _one_clear_line(run_cli(str(tmp_path / "nope.json")), "cannot read recipe")


def test_invalid_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{ oops")
    _one_clear_line(run_cli(str(path)), "is not valid JSON")


def test_unknown_key(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"prune": {"sparsty": 0.5}}))
    _one_clear_line(run_cli(str(path)), "unknown key in recipe.prune: sparsty")


def test_bad_value(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"prune": {"sparsity": 2}}))
    _one_clear_line(run_cli(str(path)), "prune.sparsity must be a sparsity in [0, 1)")


def test_missing_checkpoint_is_reported_at_run_time(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"model": {"source": "state_dict", "arch": "lenet",
                                          "path": "missing.pt"}}))
    _one_clear_line(run_cli(str(path), "--quiet"), "checkpoint not found")


def test_data_that_does_not_exist(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"model": {"source": "torchvision", "arch": "resnet18"},
                                "data": {"source": "mnist", "root": "no_such_dir"}}))
    _one_clear_line(run_cli(str(path), "--quiet"), "data folder not found")


def test_bad_export_override(tmp_path):
    _one_clear_line(run_cli("--export", str(tmp_path / "m.onnx")), "export.path must end in")


def test_unknown_method_option(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"prune": {"granularity": "nm", "options": {"N": 2}}}))
    _one_clear_line(run_cli(str(path), "--quiet"), "has no option N (its options: conv_layout, m, n)")

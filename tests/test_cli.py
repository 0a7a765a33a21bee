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


def test_json_path_that_cannot_be_written_is_refused_before_the_run(tmp_path):
    _one_clear_line(run_cli("--json", str(tmp_path), "--quiet"), "is a folder; give a file name")
    _one_clear_line(run_cli("--json", str(tmp_path / "no" / "such" / "r.json"), "--quiet"),
                    "does not exist")


@pytest.mark.parametrize("recipe,fragment", [
    ('{"finetune": {"lr": NaN}}', "finetune.lr must be a finite number"),
    ('{"finetune": {"epochs": 1, "max_batches_per_epoch": 0}}',
     "finetune.max_batches_per_epoch must be at least 1"),
    ('{"data": {"max_eval_samples": 0}}', "data.max_eval_samples must be at least 1"),
    ('{"prune": {"plugin": "no_such_plugin.py"}}', "prune.plugin: file not found"),
])
def test_bad_values_are_refused_before_anything_runs(tmp_path, recipe, fragment):
    path = tmp_path / "r.json"
    path.write_text(recipe)
    result = run_cli(str(path), "--quiet")
    _one_clear_line(result, fragment)
    assert "original: accuracy" not in result.stderr   # refused before loading and measuring


def test_shapes_export_of_a_user_model_is_refused_before_pruning(tmp_path):
    model_file = tmp_path / "net.py"
    model_file.write_text("import torch.nn as nn\n"
                          "class Net(nn.Sequential):\n"
                          "    def __init__(self):\n"
                          "        super().__init__(nn.Flatten(), nn.Linear(784, 10))\n")
    path = tmp_path / "r.json"
    path.write_text(json.dumps({
        "model": {"source": "python", "path": str(model_file), "factory": "Net"},
        "export": {"path": str(tmp_path / "out.pt"), "formats": ["shapes"]}}))
    result = run_cli(str(path), "--quiet", "--no-latency")
    _one_clear_line(result, "export.formats 'shapes' needs a model rebuilt by architecture name")
    assert "after pruning" not in result.stderr and not (tmp_path / "out.pt").exists()


def test_a_recipe_that_is_not_text_is_named(tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    _one_clear_line(run_cli(str(path)), "is not a UTF-8 text file")


def test_cuda_fine_tuning_without_a_gpu_is_refused_before_anything_runs(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"finetune": {"epochs": 1, "device": "cuda"}}))
    result = run_cli(str(path), "--quiet")
    _one_clear_line(result, "CUDA was requested but no CUDA device is available")
    assert "original: accuracy" not in result.stderr

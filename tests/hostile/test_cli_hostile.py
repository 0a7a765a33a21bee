"""Hostile inputs through the CLI (engine.cli.main in-process; a subprocess only for Ctrl-C).

Every case must end with exit code 2 and one line ``prunelab: ...`` of at most 300 characters
naming what is wrong, no traceback, every input file byte for byte as before, and no file (partial,
temporary or probe) left anywhere.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main as cli_main
from tests.hostile.hostile_helpers import (BASE_RECIPE, hostile_files, merged,  # noqa: F401
                                           tree_state, write_recipe)

ROOT = Path(__file__).resolve().parents[2]
B = BASE_RECIPE


def sd(path, arch="lenet", **more):
    return {"model": {"source": "state_dict", "arch": arch, "path": str(path), **more}}


def images(root, **more):
    return {"data": {"source": "imagefolder", "root": str(root), "image_size": 28, "channels": 1,
                     **more}}


LENET2 = {"model": {"source": "torchvision", "arch": "lenet", "num_classes": 2}}

# (id, recipe or a function of the shared folder F and the case folder C, extra CLI args as a
# function of F and C, fragment the message must contain)
CASES = [
    # ---- recipes: refused before anything loads
    ("invalid-json", "{ oops", None, "is not valid JSON"),
    ("empty-file", "", None, "is not valid JSON"),
    ("deeply-nested-array", "[" * 100_000 + "]" * 100_000, None, "nested too deeply"),
    ("deeply-nested-options", lambda F, C: merged(B, prune={"options": json.loads(
        '{"a":' * 40 + "1" + "}" * 40)}), None, "nested more than"),
    ("top-level-list", "[1, 2, 3]", None, "recipe must be a JSON object"),
    ("not-utf8", b"\xff\xfe\x00garbage", None, "not a UTF-8 text file"),
    ("unknown-key", merged(B, prune={"sparsty": 0.5}), None, "unknown key in recipe.prune: sparsty"),
    ("huge-unknown-key", merged(B, prune={"k" * 20_000: 1}), None, "unknown key in recipe.prune"),
    ("wrong-type", merged(B, prune={"sparsity": "a lot"}), None, "recipe.prune.sparsity must be a number"),
    ("batch-size-1e20-float", merged(B, data={"batch_size": 1e20}), None, "data.batch_size must be a whole number"),
    ("batch-size-10e20-int", merged(B, data={"batch_size": 10 ** 20}), None, "data.batch_size is out of range"),
    ("epochs-huge", merged(B, finetune={"epochs": 10 ** 12}), None, "finetune.epochs is out of range"),
    ("latency-runs-huge", merged(B, metrics={"latency_runs": 2 ** 40}), None, "latency_runs is out of range"),
    ("sparsity-nan", '{"prune": {"sparsity": NaN}}', None, "must be a finite number"),
    ("sparsity-infinity", '{"prune": {"sparsity": Infinity}}', None, "must be a finite number"),
    ("sparsity-negative", merged(B, prune={"sparsity": -0.1}), None, "prune.sparsity must be a sparsity"),
    ("lr-negative", merged(B, finetune={"lr": -1}), None, "finetune.lr must be positive"),
    ("bad-model-source", merged(B, model={"source": "ftp"}), None, "model.source must be one of"),
    ("pickle-untrusted", lambda F, C: {"model": {"source": "pickle", "path": str(F / "whole_model.pt")}},
     None, "set model.trust_pickle to true only for a file you trust"),
    ("python-without-factory", lambda F, C: {"model": {"source": "python", "path": str(F / "a_file")}},
     None, "model.factory"),
    ("export-bad-suffix", merged(B, export={"path": "out.txt"}), None, "export.path must end in"),
    ("export-bad-format", merged(B, export={"path": "out.pt", "formats": ["zip"]}), None, "export.formats[0]"),
    ("bad-schedule", merged(B, schedule={"kind": "weekly"}), None, "schedule.kind must be one of"),
    ("zero-latency-runs", merged(B, metrics={"latency_runs": 0}), None, "latency_runs must be >= 1"),
    # ---- checkpoints: refused when loading, before any measuring
    ("missing-checkpoint", lambda F, C: sd(C / "nope.pt"), None, "checkpoint not found"),
    ("empty-checkpoint", lambda F, C: sd(F / "empty.pt"), None, "empty.pt is not a readable PyTorch checkpoint"),
    ("random-bytes", lambda F, C: sd(F / "garbage.pt"), None, "garbage.pt is not a readable PyTorch checkpoint"),
    ("truncated", lambda F, C: sd(F / "truncated.pt"), None, "truncated.pt is not a readable PyTorch checkpoint"),
    ("json-named-pt", lambda F, C: sd(F / "text.pt"), None, "text.pt is not a readable PyTorch checkpoint"),
    ("garbage-safetensors", lambda F, C: sd(F / "garbage.safetensors"), None, "not a readable safetensors file"),
    ("no-tensors", lambda F, C: sd(F / "no_tensors.pt"), None, "does not contain a state_dict"),
    ("wrong-shapes", lambda F, C: sd(F / "wrong_shapes.pt"), None, "does not match the architecture"),
    ("wrong-class-count", lambda F, C: sd(F / "lenet.pt", num_classes=100), None, "does not match the architecture"),
    ("whole-pickle-as-state-dict", lambda F, C: sd(F / "whole_model.pt"), None, "holds more than tensors"),
    ("checkpoint-is-a-folder", lambda F, C: sd(F / "folder.pt"), None, "checkpoint not found"),
    # ---- the recipe against the model (the window runs the same check)
    ("per-layer-unknown", merged(B, prune={"per_layer": {"nope.weight": 0.5}}), None, "prune.per_layer names 'nope.weight'"),
    ("include-matches-nothing", merged(B, prune={"include": ["encoder.*"]}), None, "prune.include"),
    ("bad-regex", merged(B, prune={"include": ["re:("]}), None, "not a valid regular expression"),
    ("corner-unknown", merged(B, metrics={"show_corner": "nope.weight"}), None, "metrics.show_corner"),
    # ---- data folders: reported as data problems, by file
    ("data-root-missing", lambda F, C: {**LENET2, **images(C / "nothing")}, None, "data folder not found"),
    ("data-no-classes", lambda F, C: {**LENET2, **images(F / "imgs_no_classes")}, None, "is not an image folder"),
    ("test-split-empty", lambda F, C: {**LENET2, **images(F / "imgs_one")}, None, "test split"),
    ("zero-byte-image", lambda F, C: {**LENET2, **images(F / "imgs_zero")}, None, "9_empty.png is empty (0 bytes)"),
    ("unreadable-test-image", lambda F, C: {**LENET2, **images(F / "imgs_bad_test")}, None, "data cannot be read"),
    ("unreadable-train-image-in-finetuning", lambda F, C: {
        **LENET2, **images(F / "imgs_bad_train", val_fraction=0), "metrics": {"measure_latency": False},
        "finetune": {"epochs": 1, "batch_size": 2, "device": "cpu"}, "export": {"path": str(C / "out" / "m.pt")}},
     None, "fine-tuning failed at epoch 1, batch"),
    ("mnist-not-there", lambda F, C: {"model": {"source": "demo"}, "data": {"source": "mnist", "root": str(F / "imgs_ok")}},
     None, "MNIST not found under"),
    # ---- output paths: checked before anything loads
    ("json-over-recipe", B, lambda F, C: ["--json", str(C / "recipe.json")], "it is the recipe"),
    ("json-over-checkpoint", lambda F, C: sd(F / "lenet.pt"), lambda F, C: ["--json", str(F / "lenet.pt")], "one of the model's source files"),
    ("export-over-checkpoint", lambda F, C: {**sd(F / "lenet.pt"), "export": {"path": str(F / "lenet.pt")}}, None, "one of the model's source files"),
    ("export-over-demo-resources", lambda F, C: merged(B, export={"path": str(ROOT / "resources" / "lenet_digits.pt")}),
     None, "built-in resources"),
    ("json-over-export", lambda F, C: merged(B, export={"path": str(C / "m.pt")}),
     lambda F, C: ["--json", str(C / "m.pt")], "would be written twice"),
    ("json-over-report", lambda F, C: merged(B, export={"path": str(C / "m.pt")}),
     lambda F, C: ["--json", str(C / "m.report.json")], "would be written twice"),
    ("export-is-a-folder", lambda F, C: merged(B, export={"path": str(F / "folder.pt")}), None, "is a folder; give a file name"),
    ("json-is-a-folder", B, lambda F, C: ["--json", str(F)], "is a folder; give a file name"),
    ("export-parent-is-a-file", lambda F, C: merged(B, export={"path": str(F / "a_file" / "m.pt")}), None, "is a file, not a folder"),
    ("json-parent-is-a-file", B, lambda F, C: ["--json", str(F / "a_file" / "r.json")], "is a file, not a folder"),
    ("json-folder-missing", B, lambda F, C: ["--json", str(C / "no" / "such" / "r.json")], "does not exist"),
    ("export-read-only-filesystem", lambda F, C: merged(B, export={"path": "/proc/prunelab.pt"}), None, "is not writable"),
    ("export-inside-data-folder", lambda F, C: {**LENET2, **images(F / "imgs_ok"), "export": {"path": str(F / "imgs_ok" / "m.pt")}},
     None, "inside the data folder"),
    ("export-over-bilstm-vocabulary", lambda F, C: {"model": {"source": "text_demo"}, "data": {"source": "text_demo"},
                                                   "export": {"path": str(ROOT / "resources" / "bilstm_text_demo.pt")}},
     None, "refusing to write"),
    ("export-cli-override-over-recipe", B, lambda F, C: ["--export", str(C / "recipe.json")], "export.path must end in"),
]


def _build(value, files: Path, case: Path):
    return value(files, case) if callable(value) else value


@pytest.mark.parametrize("recipe,extra,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_refused_with_one_line(recipe, extra, fragment, hostile_files, tmp_path,
                                                capsys):
    case = tmp_path / "case"
    path = write_recipe(case, _build(recipe, hostile_files, case))
    argv = [str(path), "--quiet", "--no-latency", *(_build(extra, hostile_files, case) or [])]
    before = tree_state(hostile_files, tmp_path, ROOT / "resources")
    code = cli_main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    messages = [ln for ln in err.splitlines() if ln.startswith("prunelab:")]
    assert len(messages) == 1 and err.rstrip().splitlines()[-1] == messages[0], err
    assert len(messages[0]) <= len("prunelab: ") + 300, messages[0]
    assert fragment in messages[0], messages[0]
    # inputs unchanged, and nothing written: no partial export, temporary or probe file
    assert tree_state(hostile_files, tmp_path, ROOT / "resources") == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_read_only_export_folder_is_refused_before_the_run(hostile_files, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        path = write_recipe(tmp_path, merged(B, export={"path": str(folder / "m.pt")}))
        assert cli_main([str(path), "--quiet"]) == 2
        assert "is not writable" in capsys.readouterr().err
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def _start_cli(args, env=None):
    return subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--headless", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_ctrl_c_while_importing_exits_130_with_one_line(tmp_path):
    process = _start_cli([str(write_recipe(tmp_path, B)), "--quiet"])
    time.sleep(0.3)   # torch is still importing
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.strip()] == ["prunelab: interrupted"]


def test_ctrl_c_during_the_run_exits_130_and_exports_nothing(hostile_files, tmp_path):
    out_dir = tmp_path / "out"
    recipe = merged(B, finetune={"epochs": 50, "batch_size": 8, "device": "cpu"},
                    export={"path": str(out_dir / "m.pt")})
    process = _start_cli([str(write_recipe(tmp_path, recipe)), "--quiet"])
    for line in process.stderr:   # wait until the run (and its Ctrl-C handler) has started
        if "running recipe" in line:
            break
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert err.rstrip().splitlines()[-1].startswith("prunelab: stopped by the user")
    assert not out_dir.exists() or list(out_dir.iterdir()) == []

"""The hostile-input cases of tests/hostile/test_cli_hostile.py through the window's open and run
paths: each ends in a one-line dialog (no traceback), leaves every input byte for byte as it was
and no file behind, and the window still opens the demo and measures afterwards.

One window serves a group of cases (building a window per case would take most of the suite's
time); a failing case names itself in the assertion message."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

from engine.config import Recipe
from gui.errors import install_last_resort_handler
from gui.window import files as window_files
from tests.gui.conftest import OPEN_TIMEOUT_MS, wait_done
from tests.hostile.hostile_helpers import hostile_files, tree_state, write_recipe  # noqa: F401
from tests.hostile.test_cli_hostile import CASES, ROOT, _build

# --json and --export are command-line options: the window has no such path
CLI_ONLY = {"json-over-recipe", "json-over-checkpoint", "json-over-export", "json-over-report",
            "json-is-a-folder", "json-parent-is-a-file", "json-folder-missing",
            "export-cli-override-over-recipe"}
# where the window's words differ from the CLI's for the same refusal
WINDOW_FRAGMENT = {"per-layer-unknown": "prune.per_layer names 'nope.weight'",
                   # the window's session knows the demo checkpoint itself, not just its folder
                   "export-over-demo-resources": "lenet_digits.pt: it is one of the model's source"}
EXPORT_CASES = {c[0] for c in CASES if c[0].startswith("export-") and c[0] not in CLI_ONLY
                and c[0] not in ("export-bad-suffix", "export-bad-format")}
RUN_CASES = {"unreadable-train-image-in-finetuning"}
# the window offers to open these as trusted code; declining is answered in the status line
TRUST_OFFERED = {"whole-pickle-as-state-dict"}

GROUPS = {
    "recipes": [c for c in CASES[:24] if c[0] not in CLI_ONLY],
    "checkpoints-and-model-checks": [c for c in CASES[24:39] if c[0] not in CLI_ONLY],
    "data": [c for c in CASES[39:46] if c[0] not in CLI_ONLY],
    "outputs": [c for c in CASES[46:] if c[0] not in CLI_ONLY],
}


def _panel(w) -> tuple:
    """Everything the method panel shows."""
    p = w.method_panel
    return (p.prune_spec(), p.finetune_spec(), p.schedule_spec(), p.structured_spec(),
            p.seed.value(), dict(p.options()))


def _settle(qtbot, w) -> None:
    qtbot.waitUntil(lambda: w.busy_op is None, timeout=OPEN_TIMEOUT_MS)


def _run_case(qtbot, w, case_id, recipe_value, fragment, files: Path, folder: Path,
              asked: list) -> None:
    folder.mkdir()
    path = write_recipe(folder, _build(recipe_value, files, folder))
    before = tree_state(files, folder, ROOT / "resources")
    if w.error_box is not None:
        w.error_box.close()
    w.last_error = None
    w.open_recipe(str(path))
    _settle(qtbot, w)
    if case_id in TRUST_OFFERED:
        qtbot.waitUntil(lambda: len(asked) == 1, timeout=5_000)
        asked.clear()
        assert fragment in w.status_label.text(), f"{case_id}: {w.status_label.text()}"
        assert tree_state(files, folder, ROOT / "resources") == before, f"{case_id}: files changed"
        return
    if w.last_error is None and case_id in RUN_CASES:
        w.finetune()
        _settle(qtbot, w)
    if w.last_error is None and case_id in EXPORT_CASES:
        w.export(Recipe.load(path).export)
        _settle(qtbot, w)
    message = w.last_error
    assert message is not None, f"{case_id}: the window refused nothing"
    assert "\n" not in message and "Traceback" not in message and len(message) <= 300, case_id
    assert WINDOW_FRAGMENT.get(case_id, fragment) in message, f"{case_id}: {message}"
    assert w.error_box is not None and w.error_box.isVisible(), case_id
    assert tree_state(files, folder, ROOT / "resources") == before, f"{case_id}: files changed"


@pytest.mark.parametrize("group", list(GROUPS))
def test_hostile_inputs_through_the_window(qtbot, demo_window, hostile_files, tmp_path,
                                           monkeypatch, group):
    w = demo_window
    asked = []
    monkeypatch.setattr(window_files, "confirm_trust", lambda *a: asked.append(a) or False)
    for case_id, recipe_value, _extra, fragment in GROUPS[group]:
        _run_case(qtbot, w, case_id, recipe_value, fragment, hostile_files, tmp_path / case_id,
                  asked)
    # still usable: the demo opens and measures
    if w.error_box is not None:
        w.error_box.close()
    wait_done(qtbot, w, w.open_demo, "open", OPEN_TIMEOUT_MS)
    wait_done(qtbot, w, w.measure, "measure")
    assert w.last_report is not None and not asked


def test_a_recipe_naming_a_parameter_the_model_lacks_is_refused_as_in_the_cli(qtbot, demo_window,
                                                                             tmp_path):
    w = demo_window
    before = _panel(w)
    path = write_recipe(tmp_path, {"prune": {"sparsity": 0.2,
                                             "per_layer": {"conv1.weight": 0.9, "nope.weight": 0.5}}})
    assert w.open_recipe(str(path)) is False
    assert "prune.per_layer names 'nope.weight'" in w.last_error
    assert _panel(w) == before and w.model_panel.per_layer() in ({}, None)


def test_a_recipe_that_fails_part_way_leaves_the_method_panel_as_it_was(qtbot, demo_window,
                                                                       tmp_path):
    w = demo_window
    before = _panel(w)
    path = write_recipe(tmp_path, {"prune": {"method": "l2", "granularity": "no_such_granularity",
                                             "sparsity": 0.3, "options": {"x": 1}},
                                   "finetune": {"epochs": 3}})
    assert w.open_recipe(str(path)) is False
    assert "no_such_granularity" in w.last_error
    assert _panel(w) == before
    assert "x" not in w.method_panel.options()


def test_declining_trust_says_so(qtbot, window, hostile_files, tmp_path, monkeypatch):
    from engine.config import ModelSpec
    monkeypatch.setattr(window_files, "confirm_trust", lambda *a: False)
    assert window.open_model(ModelSpec(source="pickle", path=str(hostile_files / "whole_model.pt"))) \
        is False
    assert "was not trusted" in window.status_label.text() and window.busy_op is None


def test_an_exception_in_a_slot_gets_a_dialog_and_the_log_gets_the_traceback(qtbot, window):
    def broken_slot():
        raise ZeroDivisionError("a bug in a slot\nwith a second line")

    previous = install_last_resort_handler(window)
    try:
        QTimer.singleShot(0, broken_slot)
        qtbot.waitUntil(lambda: window.last_error is not None, timeout=5_000)
    finally:
        sys.excepthook = previous
    assert window.last_error.startswith("a bug in a slot") and "\n" not in window.last_error
    assert window.error_box.isVisible()
    log = window.log_view.text.toPlainText()
    assert "Traceback" in log and "ZeroDivisionError" in log

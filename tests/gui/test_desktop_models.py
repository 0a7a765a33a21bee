"""The window follows the model that is open: the export proposal, settings that do not apply to
a new kind of model, honest Prune results, and views that never show the previous model."""
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog

import gui.dialogs as dialogs
from engine.config import ExportSpec, ModelSpec, Recipe, StructuredSpec
from engine.pruning.sensitivity import SensitivityResult
from tests.gui.conftest import OPEN_TIMEOUT_MS, wait_done


def test_export_proposes_the_current_model_and_asks_before_overwriting(qtbot, demo_window,
                                                                       tmp_path, monkeypatch):
    w = demo_window
    path, formats = w.suggested_export()
    assert Path(path).name == "lenet_digits_pruned.pt" and formats == []
    wait_done(qtbot, w, lambda: w.export(ExportSpec(str(tmp_path / "a.pt"))), "export")
    assert w.suggested_export()[0] == str(tmp_path / "a.pt")   # the same model: its last file
    # channel removal: "shapes" is ticked, else the smaller model cannot be reopened
    w.method_panel.set_structured_spec(StructuredSpec(enabled=True, ratio=0.25))
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    assert w.channels_removed() and "shapes" in w.suggested_export()[1]
    dialog = dialogs.ExportDialog(w, *w.suggested_export())
    qtbot.addWidget(dialog)
    assert dialog.extras["shapes"].isChecked()
    # an existing file is not replaced without asking
    asked = []
    monkeypatch.setattr(dialogs, "confirm_overwrite", lambda parent, p: asked.append(p) or False)
    dialog.accept()
    assert asked == [str(tmp_path / "a.pt")] and dialog.result() != QDialog.DialogCode.Accepted
    monkeypatch.setattr(dialogs, "confirm_overwrite", lambda parent, p: True)
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    # a recipe's export section is what the dialog proposes for the recipe's model
    recipe = Recipe(model=ModelSpec(source="text_demo"), data=w.data_spec,
                    export=ExportSpec(str(tmp_path / "from_recipe.pt"), formats=["state_dict",
                                                                                 "onnx"]))
    from engine.config import DataSpec
    recipe.data = DataSpec(source="text_demo")
    recipe.save(tmp_path / "r.json")
    wait_done(qtbot, w, lambda: w.open_recipe(str(tmp_path / "r.json")), "open", OPEN_TIMEOUT_MS)
    assert w.suggested_export() == (str(tmp_path / "from_recipe.pt"), ["onnx"])
    wait_done(qtbot, w, w.open_demo, "open", OPEN_TIMEOUT_MS)   # not the previous model's file
    assert Path(w.suggested_export()[0]).name == "lenet_digits_pruned.pt"


def test_settings_that_do_not_apply_are_switched_off_and_prune_says_when_nothing_changed(
        qtbot, demo_window):
    w = demo_window
    w.method_panel.sparsity.setValue(50.0)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    assert w.status_label.text().startswith("Pruned and measured: ")
    wait_done(qtbot, w, w.prune_action.trigger, "prune")   # already at 50 %: nothing changes
    assert w.status_label.text().startswith("0 layers changed: every selected parameter")
    assert "Pruned and measured" not in w.status_label.text()
    w.method_panel.structured_box.setChecked(True)
    wait_done(qtbot, w, w.open_text_demo, "open", OPEN_TIMEOUT_MS)
    box = w.method_panel.structured_box
    assert not box.isChecked() and not box.isEnabled()
    assert "LSTM" in box.toolTip() or "Embedding" in box.toolTip()
    assert w.method_panel.structured_spec().enabled is False
    wait_done(qtbot, w, w.open_demo, "open", OPEN_TIMEOUT_MS)   # an image model again
    assert box.isEnabled()


def test_views_never_describe_the_previous_model(qtbot, demo_window, tmp_path):
    w = demo_window
    lenet_names = set(w.model_panel.prunable_names())
    qtbot.waitUntil(lambda: w.masks.data is not None, timeout=10_000)
    w.sensitivity.set_result(SensitivityResult(0.9, {"conv1.weight": [(0.0, 0.9), (0.5, 0.8)]},
                                               {"conv1.weight": 150}, grid=[0.5]))
    assert "1 layer(s) scanned" in w.sensitivity.status.text()
    w.method_panel.epochs.setValue(1)
    w.method_panel.max_batches.setValue(2)
    w.method_panel.sparsity.setValue(50.0)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    wait_done(qtbot, w, w.finetune_action.trigger, "finetune")
    assert w.training.original_line.isVisible() or w.training.start_line.isVisible()
    wait_done(qtbot, w, w.revert, "revert")
    assert not w.training.original_line.isVisible() and not w.training.start_line.isVisible()
    assert w.training.epochs == [] and "Reverted" in w.training.status.text()
    # another model: the mask view shows nothing until that model's matrix arrives
    wait_done(qtbot, w, w.open_text_demo, "open", OPEN_TIMEOUT_MS)
    text_names = set(w.model_panel.prunable_names())
    assert w.masks.data is None or (w.masks.data.name in text_names
                                    and w.masks.data.name not in lenet_names)
    assert "scanned" not in w.sensitivity.status.text()   # the LeNet scan's caption is gone
    # a failed open does not leave "Opening · …" behind
    bad = tmp_path / "broken.pt"
    bad.write_text("not a checkpoint")
    with qtbot.waitSignal(w.operation_failed, timeout=OPEN_TIMEOUT_MS):
        w.open_session(ModelSpec(source="state_dict", arch="lenet", path=str(bad)), w.data_spec)
    qtbot.wait(300)   # past the progress refresh
    assert not w.status_label.text().startswith("Opening")
    assert "Open failed" in w.status_label.text()

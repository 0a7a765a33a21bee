"""See before you cut, in the window: the size/MACs preview follows the controls, the pre-flight
check and the explainer open reports, and selecting a layer shows its channel group."""
import time

import pytest
from PySide6.QtGui import QBrush

from engine.config import StructuredSpec
from engine.metrics import count_macs
from engine.preview import SizePreview
from tests.gui.conftest import wait_done


def _wait_preview(qtbot, w):
    qtbot.waitUntil(lambda: isinstance(w.size_preview, SizePreview), timeout=60_000)


def test_size_preview_follows_the_controls_and_is_marked_predicted(qtbot, demo_window):
    w = demo_window
    _wait_preview(qtbot, w)
    panel = w.method_panel
    panel.sparsity.setValue(80.0)
    qtbot.waitUntil(lambda: "80%" in panel.preview_label.text(), timeout=2_000)
    masked = panel.preview_label.text()
    assert masked.startswith("Predicted after 80% local fine pruning (not measured): parameters")
    panel.structured_box.setChecked(True)
    panel.st_ratio.setValue(50.0)
    started = time.perf_counter()
    prediction = w.update_size_preview()
    assert time.perf_counter() - started < 0.1
    assert "removing 50% of channels" in panel.preview_label.text()
    # the same figure the Compare table then measures
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    assert prediction.macs == w.last_report.current.macs
    assert prediction.params == w.last_report.current.params
    assert any("pre-flight: 4 group(s) prunable" in line for line in w.log_view.lines())


def test_preflight_and_explainer_open_reports(qtbot, demo_window):
    w = demo_window
    w.method_panel.structured_box.setChecked(True)
    wait_done(qtbot, w, w.preflight_action.trigger, "preflight")
    assert w.report_dialog.isVisible()
    text = w.report_dialog.text.toPlainText()
    assert "[prunable] conv1 (6 channels) with conv2 (in)" in text
    assert w.status_label.text().startswith("pre-flight: 4 group(s) prunable, 0 kept whole")
    wait_done(qtbot, w, w.compare.explain_button.click, "explain", timeout=240_000)
    text = w.report_dialog.text.toPlainText()
    assert text.startswith("Why is it (not) faster?") and "storage: dense" in text
    assert "The model has not been pruned" in text


def test_selecting_a_layer_highlights_its_channel_group(qtbot, demo_window):
    w = demo_window
    w.method_panel.st_ratio.setValue(50.0)
    w.show_group("conv2.weight")
    qtbot.waitUntil(lambda: "Channel group of conv2" in w.masks.group_note.text(), timeout=30_000)
    note = w.masks.group_note.text()
    assert "removing 8 of 16 channels would remove indices" in note
    items = w.model_panel.module_items
    assert items["conv2"].background(0) != QBrush() and items["fc1"].background(0) != QBrush()
    assert items["conv1"].background(0) == QBrush()


def test_sensitivity_proposal_edits_are_previewed_and_match_the_prune(qtbot, demo_window):
    w = demo_window
    _wait_preview(qtbot, w)
    view = w.sensitivity
    view.set_grid([0.5, 0.9])
    view.eval_batches.setValue(2)
    wait_done(qtbot, w, w.scan_action.trigger, "sensitivity")
    assert view.propose(0.6)
    name = next(iter(view.proposal))
    view.set_layer_sparsity(name, 0.3)    # an edit of one row updates the preview at once
    label = w.method_panel.preview_label.text()
    assert label.startswith("Predicted after the Sensitivity proposal's per-layer ratios")
    predicted = w.preview_proposal(dict(view.proposal))
    view.apply_button.click()
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    assert predicted.nonzero_params == w.last_report.current.nonzero_params
    assert predicted.effective_macs == w.last_report.current.effective_macs


@pytest.mark.parametrize("length", [60, 150, 400])
def test_report_lines_are_readable_without_scrolling_sideways(qtbot, length):
    """A pre-flight hint is one long line: the report widens to it where the screen has room and
    wraps where it has not, and never needs the horizontal scroll bar."""
    from gui.window.foresight import TextDialog
    lines = ["pre-flight: 1 group(s) prunable", "  hint: " + "x" * length, "  [prunable] conv1"]
    dialog = TextDialog("Pre-flight check", lines)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.text.horizontalScrollBar().maximum() == 0
    assert dialog.width() <= dialog.screen().availableGeometry().width()

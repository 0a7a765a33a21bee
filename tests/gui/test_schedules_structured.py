"""Schedules and channel removal from the method panel run through the same Prune button."""
import pytest

from tests.gui.conftest import wait_done


def test_iterative_schedule_runs_rounds_with_live_charts(qtbot, demo_window):
    w = demo_window
    panel = w.method_panel
    panel.schedule.setCurrentIndex(panel.schedule.findData("iterative"))
    rounds = panel.schedule_widgets["rounds"][1]
    assert rounds.toolTip()  # generated from the schedule's own options
    rounds.setValue(2)
    panel.scope.setCurrentIndex(panel.scope.findData("global"))
    panel.sparsity.setValue(75.0)
    panel.epochs.setValue(1)
    panel.max_batches.setValue(5)
    snapshots = []
    w.worker.snapshot.connect(snapshots.append)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    assert [e.epoch for e in w.training.epochs] == [1, 1]   # one fine-tuning epoch per round
    assert len(snapshots) >= 3
    total = sum(l.numel for l in w.density.current.layers)
    nonzero = sum(l.nonzero for l in w.density.current.layers)
    assert nonzero / total == pytest.approx(0.25, abs=0.01)
    assert "iterative schedule" in w.compare.history.item(1, 0).text()
    assert any("round 2" in line for line in w.log_view.lines())


def test_channel_removal_rebuilds_the_tree_and_shrinks_the_model(qtbot, demo_window):
    w = demo_window
    panel = w.method_panel
    panel.structured_box.setChecked(True)
    panel.st_ratio.setValue(50.0)
    before = w.model_panel.info.params
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    shapes = {p.name: p.shape for p in w.model_panel.info.params}
    old = {p.name: p.shape for p in before}
    assert shapes["conv2.weight"][0] < old["conv2.weight"][0]       # filters removed
    assert shapes["fc3.weight"][0] == old["fc3.weight"][0] == 10     # classifier outputs kept
    assert w.model_panel.items["conv2.weight"].text(1) == "×".join(map(str, shapes["conv2.weight"]))
    rows = {r.metric: r for r in w.last_report.table}
    assert rows["Parameters"].ratio > 1.5 and rows["MACs"].ratio > 1.5
    assert "smaller" in w.compare.summary.text()
    assert w.density.densities()["conv2.weight"][1] < 0.6   # relative to the original size
    # the 5x5 corner after channel removal shows other filters than before: said, not marked red
    w.tabs.setCurrentWidget(w.masks)
    w.model_panel.tree.setCurrentItem(w.model_panel.items["conv2.weight"])
    qtbot.waitUntil(lambda: w.masks.data is not None and w.masks.data.name == "conv2.weight"
                    and w.masks.data.original_shape is not None, timeout=10_000)
    assert w.masks.data.original_shape == old["conv2.weight"]
    note = w.masks.corner_note.text()
    assert "Channel removal changed the shape 16×6×5×5" in note and "pruned since" not in note
    wait_done(qtbot, w, w.revert_action.trigger, "revert")
    assert {p.name: p.shape for p in w.model_panel.info.params} == old

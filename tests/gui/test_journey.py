"""The user journey on the demo: open, L1 global 80%, prune, see the density drop, fine-tune one
epoch with progress, the Compare table gains rows, export, and the export reloads."""
import json
import time

import pytest
import torch

from engine.config import ExportSpec
from engine.models.checkpoints import read_state_dict
from engine.models.lenet import LeNet
from tests.gui.conftest import wait_done


def choose(window, method="l1", scope="global", sparsity=80.0, epochs=1):
    panel = window.method_panel
    panel.component_boxes["method"].setCurrentIndex(panel.component_boxes["method"].findData(method))
    panel.scope.setCurrentIndex(panel.scope.findData(scope))
    panel.sparsity.setValue(sparsity)
    panel.epochs.setValue(epochs)


def test_user_journey(qtbot, demo_window, tmp_path):
    w = demo_window
    # opened: the model tree lists every prunable parameter, the charts show the original
    prunable = w.model_panel.prunable_names()
    assert {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight"} <= set(prunable)
    before = w.density.densities()
    assert all(orig == pytest.approx(1.0, abs=1e-3) and now == orig for orig, now in before.values())
    assert w.prune_action.isEnabled() and not w.stop_action.isEnabled()

    # L1, global, 80%: one click on Prune
    choose(w, "l1", "global", 80.0, epochs=1)
    reports = []
    w.worker.metrics.connect(reports.append)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    after = w.density.densities()
    assert after["fc1.weight"][0] == pytest.approx(1.0, abs=1e-3)
    assert after["fc1.weight"][1] < 0.5, after          # the density of a layer dropped in the chart
    total_numel = sum(l.numel for l in w.density.current.layers)
    total_nonzero = sum(l.nonzero for l in w.density.current.layers)
    assert total_nonzero / total_numel == pytest.approx(0.2, abs=0.002)  # global 80% honoured
    assert w.model_panel.items["fc1.weight"].text(3) == f"{1 - after['fc1.weight'][1]:.1%}"
    assert w.histograms.updates >= 1 and w.histograms.current is not None
    assert len(reports) == 1 and w.compare.history.rowCount() == 2  # Original + the prune
    rows = {r.metric: r for r in reports[0].table}
    assert rows["Non-zero parameters"].ratio > 3.0
    assert rows["Parameters"].ratio == pytest.approx(1.0)
    assert "Tensor shapes are unchanged" in w.compare.summary.text()

    # fine-tune one epoch: progress signals arrive with an ETA, curves fill, a row is added
    progress = []
    w.worker.progress.connect(progress.append)
    wait_done(qtbot, w, w.finetune_action.trigger, "finetune")
    ft = [p for p in progress if p.stage == "Fine-tuning"]
    assert len(ft) >= 2 and ft[-1].step == ft[-1].total > 0
    assert any(p.eta_s is not None for p in ft)
    assert [e.epoch for e in w.training.epochs] == [1]
    # validation (which picks the kept epoch) is plotted beside test, from the epoch's own numbers
    xs, ys = w.training.val_curve.getData()
    assert list(xs) == [1] and ys[0] == w.training.epochs[0].val.accuracy * 100
    assert len(w.training.steps) == ft[-1].total and all(l > 0 for l in w.training.losses)
    assert w.compare.history.rowCount() == 3
    assert w.compare.history.item(2, 0).text().startswith("+ fine-tune 1")
    assert w.density.densities()["fc1.weight"][1] == pytest.approx(after["fc1.weight"][1])  # masks held

    # export .safetensors with masks and report; it reloads into a plain LeNet
    target = tmp_path / "pruned.safetensors"
    exported = []
    w.worker.exported.connect(exported.append)
    wait_done(qtbot, w, lambda: w.export(ExportSpec(str(target), include_masks=True, report=True)),
              "export")
    assert [p.name for p in exported[0]] == ["pruned.safetensors", "pruned.masks.safetensors",
                                              "pruned.report.json"]
    model = LeNet()
    model.load_state_dict(read_state_dict(target), strict=True)
    density = float((model.fc1.weight != 0).float().mean())
    assert density == pytest.approx(w.density.densities()["fc1.weight"][1], abs=1e-6)
    report = json.loads((tmp_path / "pruned.report.json").read_text())
    assert report["recipe"]["prune"]["sparsity"] == pytest.approx(0.8)
    assert report["recipe"]["prune"]["scope"] == "global"
    assert report["comparison"] and report["pruned"]["nonzero_params"] == total_nonzero + sum(
        p.numel() for n, p in model.named_parameters() if p.dim() < 2)

    # .pt too, loaded the plain-PyTorch way
    pt = tmp_path / "pruned.pt"
    wait_done(qtbot, w, lambda: w.export(ExportSpec(str(pt), report=False)), "export")
    plain = LeNet()
    plain.load_state_dict(torch.load(pt, weights_only=True), strict=True)

    # the comparison copies and saves as CSV with every run
    csv_path = tmp_path / "compare.csv"
    w.compare.save_csv(csv_path)
    text = csv_path.read_text()
    assert "Non-zero parameters" in text and "+ fine-tune 1 epoch(s)" in text
    w.compare.copy_to_clipboard()
    from PySide6.QtGui import QGuiApplication
    assert "Non-zero parameters\t" in QGuiApplication.clipboard().text()

    # Revert brings back the original densities
    wait_done(qtbot, w, w.revert_action.trigger, "revert")
    assert w.density.densities()["fc1.weight"][1] == pytest.approx(1.0, abs=1e-3)


def test_stop_cancels_finetune_within_a_second(qtbot, demo_window):
    w = demo_window
    choose(w, "l1", "global", 50.0, epochs=200)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    density = w.density.densities()["conv2.weight"][1]
    started = []
    w.worker.progress.connect(lambda p: started.append(p) if p.stage == "Fine-tuning" else None)
    w.finetune_action.trigger()
    qtbot.waitUntil(lambda: len(started) >= 2, timeout=30_000)
    stopped_at = []
    w.worker.stopped.connect(lambda op: stopped_at.append(time.perf_counter()))  # worker thread
    with qtbot.waitSignal(w.operation_stopped, timeout=5000) as blocker:
        t0 = time.perf_counter()
        w.stop_action.trigger()
    elapsed = stopped_at[0] - t0
    print(f"stop took {elapsed * 1000:.0f} ms")
    assert blocker.args == ["finetune"]
    assert elapsed < 1.0
    assert w.busy_op is None and w.prune_action.isEnabled()
    # the model is consistent: masks still hold the pruned weights at zero
    assert w.density.densities()["conv2.weight"][1] == pytest.approx(density)


def test_gui_thread_heartbeat_never_stalls_while_finetuning(qtbot, demo_window):
    """A 20 ms QTimer on the GUI thread keeps beating (no gap over 200 ms) for 3 s of fine-tuning
    with every view live-updating."""
    from PySide6.QtCore import QTimer
    w = demo_window
    choose(w, "l1", "global", 80.0, epochs=500)
    wait_done(qtbot, w, w.prune_action.trigger, "prune")
    w.tabs.setCurrentWidget(w.histograms)  # the busiest view to repaint
    beats, snapshots, running = [], [], []
    w.worker.snapshot.connect(snapshots.append)
    w.worker.progress.connect(lambda p: running.append(p) if p.stage == "Fine-tuning" else None)
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: beats.append(time.perf_counter()) if running else None)
    timer.start()
    w.finetune_action.trigger()
    qtbot.waitUntil(lambda: bool(running), timeout=30_000)
    qtbot.wait(3000)
    assert w.busy_op == "finetune"  # still training: the beats were all taken during the run
    timer.stop()
    with qtbot.waitSignal(w.operation_stopped, timeout=5000):
        w.stop_action.trigger()
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    print(f"heartbeat: {len(beats)} beats in 3 s, max gap {max(gaps) * 1000:.0f} ms, "
          f"{len(snapshots)} snapshots, {len(running)} progress reports")
    assert len(beats) > 50
    assert max(gaps) < 0.2
    assert len(snapshots) >= 5  # charts were updated live, throttled to ~4 per second


def test_closing_during_finetune_stops_and_joins_the_worker(qtbot, demo_window):
    w = demo_window
    choose(w, "l1", "global", 50.0, epochs=200)
    running = []
    w.worker.progress.connect(lambda p: running.append(p) if p.stage == "Fine-tuning" else None)
    w.finetune_action.trigger()
    qtbot.waitUntil(lambda: len(running) >= 2, timeout=30_000)
    t0 = time.perf_counter()
    w.close()
    elapsed = time.perf_counter() - t0
    print(f"close took {elapsed * 1000:.0f} ms")
    assert w.thread.isFinished() and elapsed < 2.0


def test_stop_during_finetune_says_what_the_model_keeps(qtbot, demo_window):
    w = demo_window
    choose(w, "l1", "global", 50.0, epochs=200)
    epochs = []
    w.worker.epoch.connect(epochs.append)
    w.finetune_action.trigger()
    qtbot.waitUntil(lambda: len(epochs) >= 1, timeout=60_000)
    with qtbot.waitSignal(w.operation_stopped, timeout=10_000):
        w.stop_action.trigger()
    assert "stopped: the model keeps the epoch with the best validation accuracy so far" \
        in w.training.status.text()
    assert "press Measure" in w.status_label.text()

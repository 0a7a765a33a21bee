"""The Runs tab: runs persist across a restart of the window, a click on the Pareto chart restores
a run, Back steps back, and Export verifies."""
import torch
from PySide6.QtCore import QSettings

from engine.config import ExportSpec, MetricsSpec
from gui.main_window import MainWindow
from gui.views.runs import pareto_front
from tests.gui.conftest import OPEN_TIMEOUT_MS, wait_done


def prune_at(qtbot, window, sparsity):
    panel = window.method_panel
    panel.component_boxes["method"].setCurrentIndex(panel.component_boxes["method"].findData("l1"))
    panel.sparsity.setValue(sparsity * 100)   # the box is in percent
    wait_done(qtbot, window, window.prune, "prune")


def new_window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("run_store", str(tmp_path / "runs"))
    w = MainWindow(settings)
    w.metrics_spec = MetricsSpec(measure_latency=False)
    qtbot.addWidget(w)
    w.show()
    wait_done(qtbot, w, w.open_demo, "open", OPEN_TIMEOUT_MS)
    return w


def test_pareto_front_keeps_only_undominated_points():
    points = [(10, 0.9), (5, 0.8), (7, 0.7), (20, 0.95), (5, 0.6)]
    assert pareto_front(points) == [1, 0, 3]


def test_runs_survive_a_restart_and_a_click_restores_one(qtbot, tmp_path):
    w = new_window(qtbot, tmp_path)
    for sparsity in (0.3, 0.6, 0.9):
        wait_done(qtbot, w, w.revert, "revert")
        prune_at(qtbot, w, sparsity)
    assert [r.label for r in w.runs_view.runs] == [r.record.label for r in w.compare.reports]
    assert len(w.runs_view.runs) == 3
    middle = w.runs_view.runs[1]
    w.close()

    w = new_window(qtbot, tmp_path)          # the app started again
    qtbot.waitUntil(lambda: len(w.runs_view.runs) == 3, timeout=10_000)
    assert w.runs_view.point_for(middle.id) is not None
    # a click on the point: the same signal the scatter item's click sends
    points = [p for p in w.runs_view.points.points() if p.data() == middle.id]
    with qtbot.waitSignal(w.operation_finished, timeout=60_000,
                          check_params_cb=lambda op: op == "restore_run"):
        w.runs_view._on_click(w.runs_view.points, points)
    # the restored model measures as the run did: same accuracy, same non-zero count
    assert w.last_report.current.accuracy == middle.metrics["accuracy"]
    assert w.last_report.current.nonzero_params == middle.metrics["nonzero_params"]
    # Back: from the restored run to the original
    assert w.runs_view.back_button.isEnabled()
    wait_done(qtbot, w, w.back, "back")
    assert w.last_report.current.nonzero_params == w.last_report.original.nonzero_params
    assert not w.runs_view.back_button.isEnabled()


def test_export_verifies_in_a_fresh_process(qtbot, demo_window, tmp_path):
    w = demo_window
    prune_at(qtbot, w, 0.5)
    reports = []
    w.worker.verified.connect(reports.append)
    every = ["state_dict", "shapes", "torchscript", "onnx", "pickle"]
    wait_done(qtbot, w, lambda: w.export(ExportSpec(str(tmp_path / "m.pt"), formats=every,
                                                    verify=True)), "export")
    qtbot.waitUntil(lambda: bool(reports), timeout=60_000)
    assert reports[0].ok and [c.kind for c in reports[0].checks] == every
    assert all(c.skipped is None and c.max_abs_diff <= 1e-5 for c in reports[0].checks)
    assert w.compare.verify_lines and not w.compare.verify_title.isHidden()
    assert torch.load(tmp_path / "m.pt", weights_only=True)

"""PruneLab's main window: model panel (left), method panel (right), the six views in the centre,
run actions in the toolbar, progress with ETA in the status bar.

The window only arranges widgets and turns clicks into :class:`~gui.worker.Request` s; the one
:class:`~gui.worker.EngineWorker` runs them on its own thread and answers with plain data.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import torch
from PySide6.QtCore import QEvent, QSettings, Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QScrollArea,
    QTabWidget,
)

from engine.config import DataSpec, MetricsSpec, ModelSpec
from engine.messages import one_line
from engine.progress import CancelToken, Progress
from gui import tooltips
from gui.theme import apply_plot_theme
from gui.panels.method_panel import MethodPanel
from gui.panels.model_tree import ModelPanel
from gui.views.compare import CompareView
from gui.views.density import DensityView
from gui.views.histograms import HistogramView
from gui.views.log import LogView
from gui.views.masks import MaskView
from gui.views.sensitivity import SensitivityView
from gui.views.training import TrainingView
from gui.window.actions import WindowActions
from gui.window.cluster import WindowCluster
from gui.window.files import WindowFiles
from gui.window.fit import WindowFit
from gui.window.foresight import WindowForesight
from gui.window.guard import WindowGuard
from gui.window.layout import WindowLayout
from gui.window.history import WindowHistory
from gui.window.pairing import WindowPairing
from gui.views.runs import RunsView
from gui.window.refresh import PROGRESS_REFRESH_MS, WindowRefresh
from gui.window.runs import WindowRuns
from gui.window.pacing import AnswerPacer
from gui.worker import EngineWorker, MetricsReport, lower_engine_thread_priority


class MainWindow(WindowFiles, WindowPairing, WindowRuns, WindowHistory, WindowRefresh,
                 WindowActions, WindowCluster, WindowForesight, WindowGuard, WindowFit,
                 WindowLayout, QMainWindow):
    request = Signal(object)  # Request, delivered to the worker's thread (queued)
    # re-emitted on the GUI thread once the window has taken in the worker's answer
    operation_finished = Signal(str)
    operation_stopped = Signal(str)
    operation_failed = Signal(str, str)

    def __init__(self, settings: Optional[QSettings] = None) -> None:
        super().__init__()
        self.setWindowTitle("PruneLab")
        self.setAcceptDrops(True)
        self.settings = settings or QSettings("PruneLab", "PruneLab")
        self.model_spec: Optional[ModelSpec] = None
        self.data_spec: Optional[DataSpec] = None
        self.metrics_spec = MetricsSpec()
        self.busy_op: Optional[str] = None
        self.token: Optional[CancelToken] = None
        self.last_report: Optional[MetricsReport] = None
        self.last_export: list[Path] = []
        self.last_error: Optional[str] = None
        self.error_box: Optional[QMessageBox] = None
        self._pending_open: Optional[tuple[ModelSpec, DataSpec]] = None
        self.labels_available = True   # False in no-data mode (gui.window.refresh)

        self._build_views()
        self._build_panels()
        self._build_actions()
        self._build_status()
        self._start_worker()
        self._build_extras()
        self._build_foresight()
        self._build_cluster_actions()
        self._set_busy(None)
        self._fit_to_screen()
        self.restore_layout()
        tooltips.install(self)
        apply_plot_theme(self)

    def changeEvent(self, event) -> None:
        """A system theme switch (light/dark) recolours the plots."""
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            apply_plot_theme(self)
        super().changeEvent(event)

    def _build_views(self) -> None:
        self.histograms = HistogramView()
        self.density = DensityView()
        self.masks = MaskView()
        self.training = TrainingView()
        self.compare = CompareView()
        self.runs_view = RunsView()
        self.sensitivity = SensitivityView()
        self.log_view = LogView()
        self.tabs = QTabWidget()
        for view, name, tip in (
                (self.histograms, "Histograms", "Weight histograms per layer, original against now"),
                (self.density, "Density", "Fraction of non-zero weights per layer"),
                (self.masks, "Masks", "Weights, |w| or the mask of one parameter as an image"),
                (self.training, "Training", "Loss and accuracy while fine-tuning"),
                (self.compare, "Compare", "Original against pruned, and the history of runs"),
                (self.runs_view, "Runs", "Every stored run of this model on a Pareto chart: "
                                         "restore one, compare two, go back a step"),
                (self.sensitivity, "Sensitivity", "Accuracy when each layer is pruned alone; "
                                                  "per-layer ratios proposed for a target"),
                (self.log_view, "Log", "What the engine did, with times and errors")):
            self.tabs.addTab(view, name)
            self.tabs.setTabToolTip(self.tabs.count() - 1, tip)
        self.setCentralWidget(self.tabs)
        self.compare.save_button.clicked.connect(self.save_csv_dialog)
        self.masks.request.connect(self._on_matrix_request)
        self.histograms.layer_selected.connect(self.select_parameter)

    def _build_panels(self) -> None:
        self.model_panel = ModelPanel()
        self.model_panel.param_selected.connect(self.select_parameter)
        # resizeDocks below is ignored before the window is first shown on some platforms; without
        # a floor the tree's name column is squeezed to nothing on a real 1600-px screen.
        self.model_panel.setMinimumWidth(320)
        dock = QDockWidget("Model", self)
        dock.setObjectName("model_dock")
        dock.setWidget(self.model_panel)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable |
                         QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.method_panel = MethodPanel()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.method_panel)
        scroll.setMinimumWidth(self.method_panel.sizeHint().width() + 24)
        dock = QDockWidget("Method", self)
        dock.setObjectName("method_dock")
        dock.setWidget(scroll)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable |
                         QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.resizeDocks([self.findChild(QDockWidget, "model_dock")], [330], Qt.Orientation.Horizontal)

    def _build_status(self) -> None:
        self.status_label = QLabel("No model open: File > Open demo, or Open model…")
        self.progress_bar = QProgressBar()
        self.progress_bar.setFixedWidth(240)
        self.progress_bar.setTextVisible(True)
        self.eta_label = QLabel()
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.eta_label)
        self.statusBar().addPermanentWidget(self.progress_bar)
        self.progress_bar.hide()
        self._latest_progress: Optional[Progress] = None
        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.setInterval(PROGRESS_REFRESH_MS)
        self._progress_timer.timeout.connect(self._show_progress)

    def _start_worker(self) -> None:
        # PySide releases the GIL around every Qt call and must win it back from the training
        # thread each time; at Python's default 5 ms switch interval a repaint of many small
        # calls queued behind training for 100+ ms. 1 ms keeps the GUI thread fluid.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        # Leave the GUI thread a core: with as many torch threads as cores, a busy GUI thread
        # preempted one of them and each parallel op waited for it (LeNet's measured latency rose
        # from 0.17 ms to 48 ms on 2 cores while the window repainted).
        torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 2) - 1)))
        self.thread = QThread(self)
        self.thread.setObjectName("prunelab-engine")
        # runs in the new thread as it starts, before any torch thread is started from it
        self.thread.started.connect(lower_engine_thread_priority, Qt.ConnectionType.DirectConnection)
        self.worker = EngineWorker()
        self.worker.moveToThread(self.thread)
        self.thread.finished.connect(self.worker.deleteLater)
        self.request.connect(self.worker.run)
        w = self.worker
        # every answer from the worker is taken in its own turn of the event loop (pacing.py)
        self.answers = AnswerPacer(self)
        answer = self.answers.connect
        answer(w.opened, self._on_opened)
        answer(w.snapshot, self._on_snapshot)
        answer(w.model_changed, self._on_model_changed)
        answer(w.matrix, self._on_matrix)
        answer(w.metrics, self._on_metrics)
        answer(w.epoch, self.training.add_epoch)
        answer(w.steps, self.training.add_steps)
        w.progress.connect(self._on_progress)
        answer(w.finished, self._on_finished)
        answer(w.stopped, self._on_stopped)
        answer(w.mismatch, self._on_mismatch)
        answer(w.partial_metrics, self.compare.show_partial)
        answer(w.failed, self._on_failed)
        answer(w.exported, self._on_exported)
        answer(w.log, self.log_view.append)
        answer(w.sparsity_points, self.training.add_sparsity)
        answer(w.sensitivity, self._on_sensitivity)
        answer(w.threshold, self.histograms.set_threshold)
        self._connect_method_tools()
        self._connect_history()
        self.thread.start()

    def show_error(self, title: str, message: str) -> None:
        """A non-blocking dialog: the app stays usable behind it. One line: details go to the log."""
        message = one_line(message)
        self.last_error = message
        self.log_view.append(f"{title}: {message}")
        if self.error_box is not None:
            self.error_box.close()
        self.error_box = QMessageBox(QMessageBox.Icon.Critical, title, message,
                                     QMessageBox.StandardButton.Ok, self)
        self.error_box.open()

    def closeEvent(self, event) -> None:
        """Asks before a pruned model that was not exported is lost; then stops the running
        operation at its next batch and ends the worker thread."""
        if not self.may_discard_work("Quitting", "Quit"):
            event.ignore()
            return
        self.save_layout()
        if self.token is not None:
            self.token.cancel()
        self.thread.quit()
        self.thread.wait()
        super().closeEvent(event)

"""PruneLab's main window: model panel (left), method panel (right), the six views in the centre,
run actions in the toolbar, progress with ETA in the status bar.

The window only arranges widgets and turns clicks into :class:`~gui.worker.Request` s; the one
:class:`~gui.worker.EngineWorker` runs them on its own thread and answers with plain data.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import torch
from PySide6.QtCore import QSettings, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QInputDialog, QLabel,
                               QMainWindow, QMessageBox, QProgressBar, QScrollArea, QTabWidget,
                               QToolBar)

from engine.config import (TEXT_DATA_SOURCES, DataSpec, ExportSpec, MetricsSpec, ModelSpec, Recipe,
                           RecipeError)
from engine.models.checkpoints import STATE_DICT_SUFFIXES
from engine.progress import CancelToken, Progress
from engine.session import Session
from engine.text.bilstm import read_sidecar
from engine.text.sources import suggested_data
from gui.dialogs import (ExportDialog, MeasurementDialog, OpenDataDialog, OpenModelDialog,
                         confirm_trust)
from gui.heap import settle_heap
from gui.panels.method_panel import MethodPanel
from gui.panels.model_tree import ModelPanel, describe_group
from gui.views.compare import CompareView
from gui.views.density import DensityView
from gui.views.histograms import HistogramView
from gui.views.log import LogView
from gui.views.masks import MaskView
from gui.views.sensitivity import SensitivityView
from gui.views.training import TrainingView
from gui.worker import EngineWorker, MatrixData, MetricsReport, Request, SessionInfo

RECENT_LIMIT = 10
GROUP_REFRESH_MS = 150   # ticks change in bursts (All, None, a pattern): count the group once
PROGRESS_REFRESH_MS = 120
# operations that change or measure the model: the window is busy while one runs
QUIET_OPS = {"matrix", "group"}
PICKLE_HINT = "probably a whole pickled model"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class MainWindow(QMainWindow):
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

        self._build_views()
        self._build_panels()
        self._build_actions()
        self._build_status()
        self._start_worker()
        self._build_extras()
        self._set_busy(None)
        self._fit_to_screen()

    # ------------------------------------------------------------ construction

    def _fit_to_screen(self, preferred: tuple[int, int] = (1500, 940)) -> None:
        """The preferred size, shrunk to the screen's free area (a 1366x768 laptop included: the
        minimum width is kept under 1280 px by compact controls)."""
        screen = self.screen() or QApplication.primaryScreen()
        width, height = preferred
        if screen is not None:
            free = screen.availableGeometry()
            width, height = min(width, free.width()), min(height, free.height())
        self.resize(max(width, self.minimumSizeHint().width()), height)

    def _build_views(self) -> None:
        self.histograms = HistogramView()
        self.density = DensityView()
        self.masks = MaskView()
        self.training = TrainingView()
        self.compare = CompareView()
        self.sensitivity = SensitivityView()
        self.log_view = LogView()
        self.tabs = QTabWidget()
        for view, name, tip in (
                (self.histograms, "Histograms", "Weight histograms per layer, original against now"),
                (self.density, "Density", "Fraction of non-zero weights per layer"),
                (self.masks, "Masks", "Weights, |w| or the mask of one parameter as an image"),
                (self.training, "Training", "Loss and accuracy while fine-tuning"),
                (self.compare, "Compare", "Original against pruned, and the history of runs"),
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

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(f"{tip} ({action.shortcut().toString()})" if shortcut else tip)
        action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.open_model_action = a("Open &model…", self.open_model_dialog, "Ctrl+O",
                                   "Open a model: demo, torchvision, state_dict, Python file or pickle")
        self.open_data_action = a("Open &data…", self.open_data_dialog, "Ctrl+Shift+O",
                                  "Open evaluation and fine-tuning data")
        self.open_demo_action = a("Open d&emo", self.open_demo, None,
                                  "The built-in LeNet and digits")
        self.open_recipe_action = a("Open &recipe…", self.open_recipe_dialog, "Ctrl+Shift+R",
                                    "Load settings (and model and data) from a recipe JSON")
        self.save_recipe_action = a("&Save recipe…", self.save_recipe_dialog, "Ctrl+S",
                                    "Save the current settings as a recipe JSON that "
                                    "`python main.py --headless` runs")
        self.export_action = a("&Export…", self.export_dialog, "Ctrl+E",
                               "Write the pruned model (.pt / .safetensors), masks and a JSON report")
        self.quit_action = a("&Quit", self.close, "Ctrl+Q", "Quit PruneLab")
        self.prune_action = a("&Prune", self.prune, "Ctrl+P",
                              "Prune the model with the method panel's settings, then measure it")
        self.finetune_action = a("&Fine-tune", self.finetune, "Ctrl+T",
                                 "Fine-tune with the masks held fixed, then measure")
        self.measure_action = a("&Measure", self.measure, "Ctrl+M",
                                "Measure the model against the original (Compare tab)")
        self.stop_action = a("&Stop", self.stop, "Esc", "Stop the running operation within one batch")
        self.measurement_action = a("Measurement &settings…", self.edit_measurement, None,
                                    "Latency batch size, timed runs, warm-up and memory layout "
                                    "of the Compare table")
        self.revert_action = a("Re&vert", self.revert, "Ctrl+Shift+Z",
                               "Go back to the original weights")
        self.shortcuts_action = a("&Keyboard shortcuts", self.show_shortcuts, "F1",
                                  "List the keyboard shortcuts")
        self.scan_action = a("Scan se&nsitivity", self.scan_sensitivity, "Ctrl+Shift+N",
                             "Prune each ticked layer alone over the Sensitivity tab's grid "
                             "(criterion and granularity from the method panel) and plot accuracy")
        self.load_method_action = a("Load pruning &method file…", self.load_method_dialog,
                                    "Ctrl+Shift+M", "Add the pruning methods a Python file defines "
                                    "(runs its code: asks first)")

        menu = self.menuBar().addMenu("&File")
        for action in (self.open_model_action, self.open_data_action, self.open_demo_action,
                       self.open_recipe_action):
            menu.addAction(action)
        self.recent_menu = menu.addMenu("Open recent")
        menu.addAction(self.load_method_action)
        menu.addSeparator()
        menu.addAction(self.save_recipe_action)
        menu.addAction(self.export_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        run = self.menuBar().addMenu("&Run")
        for action in (self.prune_action, self.finetune_action, self.measure_action,
                       self.stop_action, self.revert_action):
            run.addAction(action)
        run.addAction(self.scan_action)
        run.addSeparator()
        run.addAction(self.measurement_action)
        view = self.menuBar().addMenu("&View")
        for i in range(self.tabs.count()):
            action = self._action(self.tabs.tabText(i), lambda i=i: self.tabs.setCurrentIndex(i),
                                  f"Ctrl+{i + 1}", f"Show the {self.tabs.tabText(i)} tab")
            view.addAction(action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self.shortcuts_action)

        toolbar = QToolBar("Run")
        toolbar.setObjectName("run_toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        toolbar.setMovable(False)
        for action in (self.open_model_action, self.open_data_action, None, self.prune_action,
                       self.finetune_action, self.measure_action, self.stop_action, None,
                       self.revert_action, self.export_action):
            if action is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(action)
        self.addToolBar(toolbar)
        self._refresh_recent()

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
        self.worker = EngineWorker()
        self.worker.moveToThread(self.thread)
        self.thread.finished.connect(self.worker.deleteLater)
        self.request.connect(self.worker.run)
        w = self.worker
        w.opened.connect(self._on_opened)
        w.snapshot.connect(self._on_snapshot)
        w.model_changed.connect(self._on_model_changed)
        w.matrix.connect(self._on_matrix)
        w.metrics.connect(self._on_metrics)
        w.epoch.connect(self.training.add_epoch)
        w.steps.connect(self.training.add_steps)
        w.progress.connect(self._on_progress)
        w.finished.connect(self._on_finished)
        w.stopped.connect(self._on_stopped)
        w.failed.connect(self._on_failed)
        w.exported.connect(self._on_exported)
        w.log.connect(self.log_view.append)
        w.sparsity_points.connect(self.training.add_sparsity)
        w.sensitivity.connect(self._on_sensitivity)
        w.opened.connect(lambda _info: self.sensitivity.clear())
        self._connect_method_tools()
        self.thread.start()

    # ------------------------------------------------------------ requests

    def submit(self, op: str, **args) -> bool:
        """Sends one operation to the worker; refuses (and says so) while another one runs."""
        if self.busy_op is not None:
            self.status_label.setText(f"Busy with {self.busy_op}: press Stop first")
            return False
        request = Request(op, args)
        if op not in QUIET_OPS:
            self.token = request.token
            self._set_busy(op)
        self.request.emit(request)
        return True

    def _set_busy(self, op: Optional[str]) -> None:
        self.busy_op = op
        idle = op is None
        loaded = self.model_panel.info is not None
        for action in (self.prune_action, self.finetune_action, self.measure_action,
                       self.revert_action, self.export_action):
            action.setEnabled(idle and loaded)
        for action in (self.open_model_action, self.open_data_action, self.open_demo_action,
                       self.open_recipe_action, self.open_text_demo_action):
            action.setEnabled(idle)
        self.semi_action.setEnabled(idle and loaded and self.semi_availability.available)
        self.stop_action.setEnabled(not idle)
        if idle:
            self._progress_timer.stop()
            self._latest_progress = None
            self.progress_bar.hide()
            self.eta_label.setText("")
            self.token = None

    def recipe(self) -> Recipe:
        """Everything the panels say, as the recipe the headless CLI would run."""
        include = self.model_panel.include()
        if include == [] and self.model_panel.info is not None:
            # an empty include list means "everything" to the engine; here it means nothing ticked
            raise RecipeError("no parameter is ticked in the model panel: tick the ones to prune")
        return Recipe(name="PruneLab GUI run", model=self.model_spec or ModelSpec(),
                      data=self.data_spec or DataSpec(),
                      prune=self.method_panel.prune_spec(include, self.model_panel.per_layer()),
                      finetune=self.method_panel.finetune_spec(), metrics=self.metrics_spec,
                      export=ExportSpec(path=str(self.last_export[0]) if self.last_export else None),
                      seed=self.method_panel.seed.value(),
                      structured=self.method_panel.structured_spec(),
                      schedule=self.method_panel.schedule_spec())

    def _checked_recipe(self) -> Optional[Recipe]:
        try:
            return self.recipe()
        except (RecipeError, ValueError) as exc:
            self.show_error("These settings cannot run", str(exc))
            return None

    # ------------------------------------------------------------ run actions

    def prune(self) -> bool:
        recipe = self._checked_recipe()
        if recipe is None:
            return False
        p = recipe.prune
        if recipe.structured.enabled:
            st = recipe.structured
            label = f"remove {st.ratio:.0%} channels ({st.importance}, {st.scope})"
        else:
            label = f"{p.method} {p.granularity} " + (
                "per-layer" if p.per_layer else f"{p.scope} {p.sparsity:.0%}")
            if recipe.schedule.kind != "oneshot":
                label += f", {recipe.schedule.kind} schedule"
                self._start_training_view(recipe.finetune.epochs)
        return self.submit("prune", spec=p, recipe=recipe, label=label,
                           schedule=recipe.schedule, finetune=recipe.finetune,
                           structured=recipe.structured)

    def _start_training_view(self, epochs: int) -> None:
        original = self.last_report.original.accuracy if self.last_report else None
        current = self.last_report.current.accuracy if self.last_report else None
        self.training.start(epochs, original, current)

    def finetune(self) -> bool:
        recipe = self._checked_recipe()
        if recipe is None:
            return False
        if recipe.finetune.epochs == 0:
            self.show_error("Nothing to fine-tune", "Set Epochs in the method panel to 1 or more.")
            return False
        self._start_training_view(recipe.finetune.epochs)
        self.tabs.setCurrentWidget(self.training)
        return self.submit("finetune", spec=recipe.finetune, recipe=recipe,
                           label=f"+ fine-tune {recipe.finetune.epochs} epoch(s)")

    def measure(self) -> bool:
        recipe = self._checked_recipe()
        return self.submit("measure", recipe=recipe, label="measure")

    def edit_measurement(self) -> bool:
        """Measurement settings; the next Measure (or Prune, Fine-tune) times both models anew."""
        dialog = MeasurementDialog(self, self.metrics_spec)
        if not dialog.exec():
            return False
        self.metrics_spec = dialog.spec()
        spec = self.metrics_spec
        self.status_label.setText(
            f"Latency: batch {spec.latency_batch_size}, median of {spec.latency_runs} runs"
            + (", channels-last" if spec.channels_last else "")
            + ("" if spec.measure_latency else " (latency off)") + " · Measure to apply")
        return True

    def stop(self) -> None:
        if self.token is not None:
            self.token.cancel()
            self.status_label.setText(f"Stopping {self.busy_op}…")

    def revert(self) -> bool:
        return self.submit("revert")

    def _after_revert(self) -> None:
        self.compare.mark_stale("Reverted to the original: the table below describes the model "
                                "before Revert. Prune, or press Measure.")

    def export(self, spec: ExportSpec) -> bool:
        try:
            spec.validate()
            if not spec.path:
                raise RecipeError("choose a file to export to")
        except RecipeError as exc:
            self.show_error("Cannot export", str(exc))
            return False
        recipe = self._checked_recipe()
        return self.submit("export", spec=spec, recipe=recipe)

    def export_dialog(self) -> None:
        suggested = str(Path(self.settings.value("last_dir", str(Path.cwd()))) / "pruned.pt")
        dialog = ExportDialog(self, str(self.last_export[0]) if self.last_export else suggested)
        if dialog.exec():
            self.export(dialog.spec())

    # ------------------------------------------------------------ opening

    def open_demo(self) -> bool:
        return self.open_session(ModelSpec(), DataSpec())

    def open_session(self, model_spec: ModelSpec, data_spec: DataSpec) -> bool:
        try:
            model_spec.validate()
            data_spec.validate()
        except RecipeError as exc:
            self.show_error("Cannot open", str(exc))
            return False
        self._pending_open = (model_spec, data_spec)
        return self.submit("open", model=model_spec, data=data_spec, metrics=self.metrics_spec,
                           seed=self.method_panel.seed.value())

    def open_model(self, spec: ModelSpec) -> bool:
        """Asks for trust first when the model source runs code from the file. A text model
        opened while the data is not text for it comes with the data it is usually paired with."""
        if spec.source in ("pickle", "python") and spec.path:
            what = "a pickled model" if spec.source == "pickle" else "a Python model file"
            if not confirm_trust(self, spec.path, what):
                return False
            if spec.source == "pickle":
                spec.trust_pickle = True
        data = self.data_for_model(spec)
        if data is None:
            return self._ask_data_for(spec)
        return self.open_session(spec, data)

    def open_model_dialog(self) -> None:
        from engine.models.architectures import architecture_names
        dialog = OpenModelDialog(self, self.model_spec, architecture_names())
        if dialog.exec():
            self.open_model(dialog.spec())

    def open_data_dialog(self) -> None:
        dialog = OpenDataDialog(self, self.data_spec)
        if dialog.exec():
            self.open_session(self.model_spec or ModelSpec(), dialog.spec())

    def open_path(self, path: str) -> bool:
        """A dropped or recent file: a recipe, a Python model file or a checkpoint."""
        p = Path(path)
        suffix = p.suffix.lower()
        if p.is_dir():   # a Hugging Face model folder (config.json, weights, tokenizer)
            return self.open_model(ModelSpec(source="hf", path=path))
        if suffix == ".json":
            return self.open_recipe(path)
        if suffix == ".py":
            factory, ok = QInputDialog.getText(self, "Python model", f"Class or factory in {p.name}:")
            if not ok or not factory.strip():
                return False
            return self.open_model(ModelSpec(source="python", path=path, factory=factory.strip(),
                                             num_classes=(self.model_spec or ModelSpec()).num_classes))
        if suffix in STATE_DICT_SUFFIXES:
            current = self.model_spec or ModelSpec()
            arch = current.arch if current.source in ("state_dict", "torchvision", "demo") else "lenet"
            # a channel-pruned export carries its architecture in <name>.shapes.json beside it
            shapes = p.with_name(f"{p.stem}.shapes.json")
            if is_bilstm_checkpoint(p):
                arch = "bilstm"
            return self.open_model(ModelSpec(source="state_dict", path=path, arch=arch,
                                             num_classes=current.num_classes,
                                             shapes=str(shapes) if shapes.is_file() else None))
        self.show_error("Cannot open this file", f"{p.name}: PruneLab opens checkpoints "
                        f"({', '.join(STATE_DICT_SUFFIXES)}), Python model files and recipes (.json).")
        return False

    def open_recipe(self, path: str) -> bool:
        try:
            recipe = Recipe.load(path)
            if not self._load_recipe_plugin(recipe):
                return False
            self.method_panel.set_prune_spec(recipe.prune)
            self.method_panel.set_finetune_spec(recipe.finetune)
            self.method_panel.set_schedule_spec(recipe.schedule)
            self.method_panel.set_structured_spec(recipe.structured)
            self.method_panel.seed.setValue(recipe.seed)
        except (RecipeError, ValueError) as exc:
            self.show_error("Cannot open recipe", str(exc))
            return False
        self.metrics_spec = recipe.metrics
        self._pending_selection = (recipe.prune.include, recipe.prune.per_layer)
        self._remember("recipe", path)
        if recipe.model != self.model_spec or recipe.data != self.data_spec:
            return self._open_with_trust(recipe.model, recipe.data)
        self._apply_pending_selection()
        return True

    def _open_with_trust(self, model: ModelSpec, data: DataSpec) -> bool:
        """A recipe's trust_pickle is not trust: the person at the window is asked every time."""
        if model.source in ("pickle", "python") and model.path:
            if not confirm_trust(self, model.path, "a model"):
                return False
            model.trust_pickle = model.source == "pickle"
        return self.open_session(model, data)

    def _apply_pending_selection(self) -> None:
        pending = getattr(self, "_pending_selection", None)
        if pending is not None and self.model_panel.info is not None:
            try:
                self.model_panel.apply_selection(*pending)
            except KeyError as exc:
                self.show_error("Recipe does not fit this model", f"unknown parameter {exc}")
            self._pending_selection = None

    def open_recipe_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open recipe", self._last_dir(), "Recipes (*.json)")
        if path:
            self.open_recipe(path)

    def save_recipe_dialog(self) -> None:
        recipe = self._checked_recipe()
        if recipe is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save recipe", str(Path(self._last_dir()) / "recipe.json"),
                                              "Recipes (*.json)")
        if path:
            self.save_recipe(path)

    def save_recipe(self, path: str) -> None:
        recipe = self.recipe()
        recipe.save(path)
        self._remember("recipe", path)
        self.log_view.append(f"saved recipe {path}")

    def save_csv_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save comparison", str(Path(self._last_dir()) / "comparison.csv"),
                                              "CSV (*.csv)")
        if path:
            self.compare.save_csv(path)
            self.log_view.append(f"saved comparison {path}")

    # ------------------------------------------------------------ drag and drop, recent files

    def dragEnterEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls and all(u.isLocalFile() and Path(u.toLocalFile()).suffix.lower() in
                        (*STATE_DICT_SUFFIXES, ".json", ".py") for u in urls[:1]):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            event.acceptProposedAction()
            self.open_path(urls[0].toLocalFile())

    def recent_files(self) -> list[dict]:
        try:
            items = json.loads(self.settings.value("recent", "[]"))
        except (TypeError, ValueError):
            return []
        return [i for i in items if isinstance(i, dict) and "path" in i and "kind" in i]

    def _remember(self, kind: str, path: str) -> None:
        path = str(Path(path).resolve())
        items = [i for i in self.recent_files() if i["path"] != path]
        items.insert(0, {"kind": kind, "path": path})
        self.settings.setValue("recent", json.dumps(items[:RECENT_LIMIT]))
        self.settings.setValue("last_dir", str(Path(path).parent))
        self._refresh_recent()

    def _last_dir(self) -> str:
        return str(self.settings.value("last_dir", str(Path.cwd())))

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        items = self.recent_files()
        for item in items:
            action = self.recent_menu.addAction(f"{Path(item['path']).name}  ({item['kind']})")
            action.setToolTip(item["path"])
            action.triggered.connect(lambda _c=False, p=item["path"]: self.open_path(p))
        self.recent_menu.setEnabled(bool(items))

    # ------------------------------------------------------------ worker answers

    def _on_opened(self, info: SessionInfo) -> None:
        if info.model_spec is not None:
            self.model_spec, self.data_spec = info.model_spec, info.data_spec
            if info.model_spec.path:
                self._remember("model", info.model_spec.path)
        self._pending_open = None
        self.model_panel.set_model(info.model)
        self.histograms.set_original(info.original_snapshot)
        self.density.set_original(info.original_snapshot)
        names = [p.name for p in info.model.prunable]
        self.masks.set_parameters(names)
        self.compare.clear()
        self.last_report = None
        self._apply_pending_selection()
        self.setWindowTitle(f"PruneLab — {info.model.description}")
        self._progress_timer.stop()   # a pending "Opening…" refresh must not overwrite this
        self._latest_progress = None
        self.status_label.setText(f"{info.model.description}; {info.data_description}")

    def _on_model_changed(self, info) -> None:
        """New sparsities after a run; a new tree when channel removal changed the shapes."""
        old = self.model_panel.info
        # compared as name -> shape: pruning re-registers a weight as weight_orig, which moves it
        # after the bias in named_parameters() without changing anything the tree shows
        if old is None or {p.name: p.shape for p in old.params} != {p.name: p.shape for p in info.params}:
            panel = self.model_panel
            include, per_layer = (panel.include(), panel.per_layer()) if old is not None else (None, None)
            panel.set_model(info)
            if old is not None:   # same parameters, new widths: the user's ticks and targets stay
                panel.apply_selection(include, per_layer)
        else:
            self.model_panel.update_stats(info)

    def _on_snapshot(self, snapshot) -> None:
        self.histograms.update_snapshot(snapshot)
        self.density.update_snapshot(snapshot)

    def _on_matrix_request(self, name: str, what: str) -> None:
        self.worker.watch = (name, what)  # picked up by the next live snapshot while busy
        if self.busy_op is None:
            self.submit("matrix", name=name, what=what)

    def _on_matrix(self, data: MatrixData) -> None:
        self.masks.set_matrix(data)

    def select_parameter(self, name: str) -> None:
        self.histograms.select(name)
        self.masks.select(name)

    def _on_metrics(self, report: MetricsReport) -> None:
        self.last_report = report
        self.compare.add_report(report)

    def _on_progress(self, p: Progress) -> None:
        """Keeps the newest report and shows it at most every PROGRESS_REFRESH_MS: the worker may
        report 20 times a second, and every repaint competes with training for the GIL."""
        self._latest_progress = p
        if not self._progress_timer.isActive():
            self._progress_timer.start()

    def _show_progress(self) -> None:
        p = self._latest_progress
        if p is None or self.busy_op is None:
            return
        self.progress_bar.show()
        if p.total:
            self.progress_bar.setRange(0, p.total)
            self.progress_bar.setValue(p.step)
            self.progress_bar.setFormat(f"{p.stage} %p%")
        else:
            self.progress_bar.setRange(0, 0)  # busy indicator: the length is unknown
        parts = [p.stage]
        if p.total:
            parts.append(f"{p.step}/{p.total}")
        if p.message:
            parts.append(p.message)
        if p.loss is not None:
            parts.append(f"loss {p.loss:.4f}")
        self.status_label.setText(" · ".join(parts))
        self.eta_label.setText(f"ETA {_duration(p.eta_s)}" if p.eta_s is not None else "")

    def _on_finished(self, op: str) -> None:
        if op in QUIET_OPS:
            return
        self._set_busy(None)
        messages = {"prune": "Pruned and measured: see Compare",
                    "finetune": "Fine-tuned and measured: see Compare",
                    "measure": "Measured: see Compare", "revert": "Reverted to the original",
                    "open": self.status_label.text(), "adopt": "Ready",
                    "export": self.status_label.text()}   # _on_exported listed the files
        self.status_label.setText(messages.get(op, f"{op} done"))
        if op == "revert":
            self._after_revert()
        if op in ("open", "adopt"):
            settle_heap()
        self.operation_finished.emit(op)

    def _on_stopped(self, op: str) -> None:
        self._set_busy(None)
        self.status_label.setText(f"{op} stopped; the model is consistent"
                                  + ("; press Measure to compare it" if op == "finetune" else ""))
        if op == "finetune":
            self.training.mark_stopped()
        self.operation_stopped.emit(op)

    def _on_failed(self, op: str, message: str) -> None:
        if op not in QUIET_OPS:
            self._set_busy(None)
        if op == "open" and PICKLE_HINT in message and self._pending_open is not None:
            model, data = self._pending_open
            QTimer.singleShot(0, lambda: self._offer_pickle(model, data, message))
        else:
            self.show_error(f"{op.capitalize()} failed", message)
        self.operation_failed.emit(op, message)

    def _offer_pickle(self, model: ModelSpec, data: DataSpec, message: str) -> None:
        pickled = ModelSpec(source="pickle", path=model.path, num_classes=model.num_classes)
        if confirm_trust(self, model.path, "a full pickled model"):
            pickled.trust_pickle = True
            self.open_session(pickled, data)
        else:
            self.status_label.setText(message)

    def _on_exported(self, paths: list) -> None:
        self.last_export = [Path(p) for p in paths]
        self.status_label.setText("Exported " + ", ".join(Path(p).name for p in paths))
        self.settings.setValue("last_dir", str(Path(paths[0]).parent))

    def show_error(self, title: str, message: str) -> None:
        """A non-blocking dialog: the app stays usable behind it."""
        self.last_error = message
        self.log_view.append(f"{title}: {message}")
        if self.error_box is not None:
            self.error_box.close()
        self.error_box = QMessageBox(QMessageBox.Icon.Critical, title, message,
                                     QMessageBox.StandardButton.Ok, self)
        self.error_box.open()

    def show_shortcuts(self) -> None:
        lines = [f"{a.shortcut().toString():<14} {a.text().replace('&', '')}"
                 for a in self.actions() if not a.shortcut().isEmpty()]
        QMessageBox.information(self, "Keyboard shortcuts", "\n".join(lines))

    # ------------------------------------------------------------ sensitivity, method files

    def _connect_method_tools(self) -> None:
        self.sensitivity.set_scan_action(self.scan_action)
        self.sensitivity.propose_failed.connect(self.show_error)
        self.sensitivity.apply_requested.connect(self.apply_layer_targets)
        # available exactly when Prune (scan) or Open (loading code) is
        self.prune_action.changed.connect(
            lambda: self.scan_action.setEnabled(self.prune_action.isEnabled()))
        self.open_model_action.changed.connect(
            lambda: self.load_method_action.setEnabled(self.open_model_action.isEnabled()))
        self.operation_finished.connect(self._after_method_tool)

    def scan_sensitivity(self) -> bool:
        """Runs the sensitivity scan over the ticked layers with the method panel's criterion,
        granularity and options, on a copy of the current model."""
        try:
            include = self.model_panel.include()
            if include == [] and self.model_panel.info is not None:
                raise RecipeError("no parameter is ticked in the model panel: tick the layers "
                                  "to scan")
            spec = self.method_panel.prune_spec(include, None)
            grid = self.sensitivity.grid()
        except (RecipeError, ValueError) as exc:
            self.show_error("Cannot scan", str(exc))
            return False
        self.tabs.setCurrentWidget(self.sensitivity)
        return self.submit("sensitivity", spec=spec, grid=grid,
                           max_eval_batches=self.sensitivity.max_eval_batches())

    def _on_sensitivity(self, result) -> None:
        self.sensitivity.set_result(result)

    def _after_method_tool(self, op: str) -> None:
        if op == "sensitivity":
            self.status_label.setText("Sensitivity scanned: propose ratios in the Sensitivity tab")

    def apply_layer_targets(self, targets: dict) -> bool:
        """Writes per-parameter sparsities (a sensitivity proposal) into the model panel: those
        parameters are ticked and get the targets, and the scope becomes local, where per-layer
        targets apply. Prune then runs them."""
        missing = sorted(set(targets) - set(self.model_panel.prunable_names()))
        if missing:
            self.show_error("The proposal does not fit this model",
                            f"{', '.join(missing)} not found: the model changed since the scan; "
                            f"scan again")
            return False
        for name, value in targets.items():
            self.model_panel.set_checked(name, True)
            self.model_panel.set_target(name, float(value))
        self.method_panel.scope.setCurrentIndex(self.method_panel.scope.findData("local"))
        self.status_label.setText(f"Per-layer targets set for {len(targets)} layer(s): Prune "
                                  f"uses them")
        return True

    def load_method_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load pruning method file", self._last_dir(),
                                              "Python files (*.py)")
        if path:
            self.load_method_file(path)

    def load_method_file(self, path: str) -> list[str]:
        """Asks for trust, then registers the file's methods beside the built-in criteria and
        selects the first; the method panel's spec then names the file as its ``plugin``, so a
        saved recipe loads it again. Returns the names added ([] when refused or on error)."""
        from engine.pruning.custom import load_plugin
        if self.busy_op is not None:
            self.status_label.setText(f"Busy with {self.busy_op}: press Stop first")
            return []
        if not confirm_trust(self, path, "a pruning method file"):
            self.status_label.setText(f"Not loaded: {Path(path).name}")
            return []
        try:
            names = load_plugin(path)
        except Exception as exc:  # the user's code may raise anything: a dialog, never a crash
            self.show_error("Cannot load the method file", str(exc).strip() or type(exc).__name__)
            return []
        self.method_panel.refresh_components(select_method=names[0])
        self.log_view.append(f"loaded {', '.join(names)} from {path}")
        self.status_label.setText(f"Loaded {', '.join(names)} from {Path(path).name}")
        return names

    def _load_recipe_plugin(self, recipe: Recipe) -> bool:
        """A recipe naming a method file: load it, after asking for trust, before the method panel
        shows the recipe's method (a file this session already loaded is not asked about again)."""
        from engine.pruning.custom import loaded_plugins
        plugin = recipe.prune.plugin
        if not plugin or str(Path(plugin).expanduser().resolve()) in loaded_plugins():
            return True
        return bool(self.load_method_file(plugin))

    # ------------------------------------------------------------ closing

    def closeEvent(self, event) -> None:
        """Stops the running operation at its next batch, then ends the worker thread."""
        if self.token is not None:
            self.token.cancel()
        self.thread.quit()
        self.thread.wait()
        super().closeEvent(event)

    # ------------------------------------------------------------ text models, parameter groups, 2:4

    def _build_extras(self) -> None:
        """Text-model opening, the ticked group's sparsity, layer widths and 2:4 sparse kernels."""
        a = self._action
        self.open_text_demo_action = a("Open &text demo (BiLSTM)", self.open_text_demo, None,
                                       "The built-in BiLSTM and its 4-class news texts")
        self.semi_availability = Session.semi_structured_availability()
        self.semi_action = a("2:4 sparse &kernels (GPU)", self.run_semi_structured, None,
                             semi_structured_tip(self.semi_availability))
        self.semi_mask_action = QAction("Apply a 2:4 magnitude mask first (on the copy)", self)
        self.semi_mask_action.setCheckable(True)
        self.semi_mask_action.setToolTip("Without it only Linear layers already pruned 2:4 (the "
                                         "n:m granularity) are converted; with it every eligible "
                                         "Linear of the GPU copy keeps its 2 largest of every 4 "
                                         "weights. The session's model is never changed.")
        self.semi_mask_action.setEnabled(self.semi_availability.available)
        menus = {m.text(): m.menu() for m in self.menuBar().actions()}
        menus["&File"].insertAction(self.open_recipe_action, self.open_text_demo_action)
        menus["&Run"].addSeparator()
        menus["&Run"].addAction(self.semi_action)
        menus["&Run"].addAction(self.semi_mask_action)
        menus["&Run"].setToolTipsVisible(True)   # the tooltip says why 2:4 is unavailable
        toolbar = self.findChild(QToolBar, "run_toolbar")
        toolbar.addSeparator()
        toolbar.addAction(self.semi_action)   # a disabled button still shows its tooltip
        self.log_view.append("2:4 sparse kernels: " + ("available — " if self.semi_availability.available
                                                        else "unavailable — ")
                             + self.semi_availability.reason)

        self.worker.group.connect(self.model_panel.set_group)
        self.worker.layer_widths.connect(self.compare.set_layer_widths)
        self.worker.semi_structured.connect(self._on_semi_structured)
        self._group_timer = QTimer(self)
        self._group_timer.setSingleShot(True)
        self._group_timer.setInterval(GROUP_REFRESH_MS)
        self._group_timer.timeout.connect(self._send_group)
        self.model_panel.selection_changed.connect(self._group_timer.start)
        self.request.connect(self._sync_group_names)
        self.operation_finished.connect(self._after_operation)

    def open_text_demo(self) -> bool:
        return self.open_session(ModelSpec(source="text_demo"), DataSpec(source="text_demo"))

    def data_for_model(self, spec: ModelSpec) -> Optional[DataSpec]:
        """The current data when it suits ``spec``; else the data such a model is usually opened
        with (engine.text.sources.suggested_data); None when only the user can say."""
        current = self.data_spec or DataSpec()
        wanted = text_data_kind(spec)
        if wanted is None:   # an image model: the image demo replaces text data for the demo LeNet
            if spec.source == "demo" and current.source in TEXT_DATA_SOURCES:
                return DataSpec()
            return current
        if current.source in wanted:
            return current
        suggested = suggested_data(spec.source, spec.path)
        if suggested is None and spec.source == "state_dict":
            suggested = DataSpec(source="text_demo")   # read with the checkpoint's own vocabulary
        if suggested is not None:
            self.log_view.append(f"{spec.source} is a text model: opening it with "
                                 f"{suggested.source} data" + (f" from {suggested.root}"
                                                               if suggested.root else ""))
        return suggested

    def _ask_data_for(self, spec: ModelSpec) -> bool:
        """No data to guess for this text model: the Open data dialog, preset to its kind."""
        kind = text_data_kind(spec)
        dialog = OpenDataDialog(self, DataSpec(source=kind[-1] if kind else "demo"))
        dialog.setWindowTitle(f"Open data for {Path(spec.path or spec.source).name}")
        if not dialog.exec():
            self.status_label.setText("Not opened: the model needs text data")
            return False
        return self.open_session(spec, dialog.spec())

    def _send_group(self) -> None:
        """The ticked parameters go to the worker, which answers with their group sparsity."""
        if self.model_panel.info is None:
            return
        names = self.model_panel.checked()
        self.worker.group_names = names   # read with the next state while an operation runs
        if self.busy_op is None:
            self.submit("group", names=names)

    def _sync_group_names(self, _request=None) -> None:
        """Runs as each request leaves, before the worker takes it: the group it counts at the end
        of the operation is the one ticked when it started, even inside the refresh delay."""
        if self.model_panel.info is not None:
            self.worker.group_names = self.model_panel.checked()

    def run_semi_structured(self) -> bool:
        if not self.semi_availability.available:
            self.show_error("2:4 sparse kernels unavailable", self.semi_availability.reason)
            return False
        return self.submit("semi_structured", apply_mask=self.semi_mask_action.isChecked())

    def _on_semi_structured(self, report) -> None:
        self.compare.set_semi_structured(report)
        self.tabs.setCurrentWidget(self.compare)

    def _after_operation(self, op: str) -> None:
        if self.model_panel.group is None and op not in QUIET_OPS:
            self._group_timer.start()   # ticks changed while it ran: count the group now
        group = self.model_panel.group
        if op in ("prune", "finetune") and group is not None:
            text = describe_group(group)
            self.status_label.setText(f"{self.status_label.text()} · {text}")
            self.log_view.append(text)
        elif op == "semi_structured" and self.compare.semi_report is not None:
            self.status_label.setText("2:4 sparse kernels: " + self.compare.semi.text())


def semi_structured_tip(availability) -> str:
    if availability.available:
        return (f"Convert the model's 2:4-sparse Linear weights to sparse tensor-core kernels on a "
                f"GPU copy, check its outputs and time it against dense ({availability.reason})")
    return f"Unavailable: {availability.reason}"


def text_data_kind(spec: ModelSpec) -> Optional[tuple[str, ...]]:
    """The data sources a text model reads (None for an image model)."""
    if spec.source == "hf":
        return ("hf_tsv",)
    if spec.source == "text_demo" or (spec.source == "state_dict" and spec.arch == "bilstm"):
        return ("text_demo", "text_csv", "text_tsv")
    return None


def is_bilstm_checkpoint(path: Path) -> bool:
    """A PruneLab BiLSTM export has its settings JSON (vocabulary, sizes) beside it."""
    try:
        return read_sidecar(path) is not None
    except ValueError:
        return False

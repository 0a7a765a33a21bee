"""Run control of the main window: turning the panels into a recipe, sending operations to the worker,
the busy state of the actions, and what the window does when an operation ends."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QTimer

from engine.config import DataSpec, ExportSpec, FinetuneSpec, ModelSpec, Recipe, RecipeError
from gui.dialogs import MeasurementDialog
from gui.heap import settle_heap
from gui.worker import Request

# operations that change or measure the model: the window is busy while one runs
QUIET_OPS = {"matrix", "group", "group_plans"}
# the loader's message when a file is no state_dict: the window then offers to trust the pickle
PICKLE_HINT = "probably a whole pickled model"


class WindowRuns:
    """Prune, fine-tune, measure, stop, revert, export, scan: one operation at a time.
    A mixin of :class:`gui.main_window.MainWindow`: it uses the widgets and state that
    the window builds."""

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
                       self.revert_action, self.export_action, self.back_action,
                       self.save_project_action, self.preflight_action):
            action.setEnabled(idle and loaded)
        self.finetune_action.setEnabled(idle and loaded and self.labels_available)
        self.compare.explain_button.setEnabled(idle and loaded)
        for action in (self.open_model_action, self.open_data_action, self.open_demo_action,
                       self.open_recipe_action, self.open_text_demo_action,
                       self.open_project_action):
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
                      finetune=self.method_panel.finetune_spec() if self.labels_available
                      else FinetuneSpec(epochs=0),   # no-data mode: nothing to fine-tune on
                      metrics=self.metrics_spec,
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
        self._remember_layers_before_prune()
        self._prune_structured = recipe.structured.enabled
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
        if not self.may_discard_work("Revert", "Revert"):
            return False
        return self.submit("revert")

    def _after_revert(self) -> None:
        self.histograms.set_threshold(None)
        self.training.reset("Reverted to the original: fine-tune to see new curves.")
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

    def run_semi_structured(self) -> bool:
        if not self.semi_availability.available:
            self.show_error("2:4 sparse kernels unavailable", self.semi_availability.reason)
            return False
        return self.submit("semi_structured", apply_mask=self.semi_mask_action.isChecked())

    def _on_finished(self, op: str) -> None:
        if op in QUIET_OPS:
            return
        self._set_busy(None)
        self._track_work(op)
        messages = {"prune": self.prune_result_text(getattr(self, "_prune_structured", False))
                    if op == "prune" else "",
                    "finetune": "Fine-tuned and measured: see Compare",
                    "measure": "Measured: see Compare", "revert": "Reverted to the original",
                    "open": self.status_label.text(), "adopt": "Ready",
                    "export": self.status_label.text(),   # _on_exported listed the files
                    "back": "Back one step and measured: see Compare",
                    "restore_run": "Run restored and measured: see Compare",
                    "save_project": self.status_label.text(),
                    "open_project": "Project opened and measured: see Compare and Runs"}
        self.status_label.setText(messages.get(op, f"{op} done"))
        if op == "revert":
            self._after_revert()
        if op in ("open", "adopt", "open_project"):
            settle_heap()
        self.operation_finished.emit(op)

    def _on_stopped(self, op: str) -> None:
        self._set_busy(None)
        self.status_label.setText(f"{op} stopped; the model is consistent"
                                  + ("; press Measure to compare it" if op == "finetune" else ""))
        if op == "finetune":
            self.training.mark_stopped()
            self._track_work(op)   # the best epoch so far is kept
        self.operation_stopped.emit(op)

    def _on_failed(self, op: str, message: str) -> None:
        if op not in QUIET_OPS:
            self._set_busy(None)
        if self._take_mismatch(op):
            self.status_label.setText(f"The model and the data do not fit: {message}")
        elif op == "open" and PICKLE_HINT in message and self._pending_open is not None:
            model, data = self._pending_open
            QTimer.singleShot(0, lambda: self._offer_pickle(model, data, message))
        else:
            self.show_error(f"{op.capitalize()} failed", message)
        if op == "open":   # "Opening · …" must not stay: say what is still open
            self._progress_timer.stop()
            self.eta_label.setText("")
            still = (self.model_panel.info.description if self.model_panel.info is not None
                     else "no model open")
            self.status_label.setText(f"Open failed; still open: {still}")
        self.operation_failed.emit(op, message)

    def _on_exported(self, paths: list) -> None:
        self.last_export = [Path(p) for p in paths]
        self.status_label.setText("Exported " + ", ".join(Path(p).name for p in paths))
        self.settings.setValue("last_dir", str(Path(paths[0]).parent))

    def _connect_method_tools(self) -> None:
        self.sensitivity.set_scan_action(self.scan_action)
        self.sensitivity.propose_failed.connect(self.show_error)
        self.sensitivity.apply_requested.connect(self.apply_layer_targets)
        # available exactly when Prune (scan) or Open (loading code) is
        self.prune_action.changed.connect(
            lambda: self.scan_action.setEnabled(self.prune_action.isEnabled()
                                                and self.labels_available))
        self.open_model_action.changed.connect(
            lambda: self.load_method_action.setEnabled(self.open_model_action.isEnabled()))
        self.operation_finished.connect(self._after_method_tool)

    def _after_method_tool(self, op: str) -> None:
        if op == "sensitivity":
            self.status_label.setText("Sensitivity scanned: propose ratios in the Sensitivity tab")


def semi_structured_tip(availability) -> str:
    if availability.available:
        return (f"Convert the model's 2:4-sparse Linear weights to sparse tensor-core kernels on a "
                f"GPU copy, check its outputs and time it against dense ({availability.reason})")
    return f"Unavailable: {availability.reason}"


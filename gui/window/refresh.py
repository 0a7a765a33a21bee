"""View refresh of the main window: the worker's answers (model info, snapshots, matrices, metrics,
progress, group sparsity) shown in the panels and views."""
from __future__ import annotations

from engine.data.synthetic import NEEDS_LABELS
from engine.progress import Progress
from gui.panels.model_tree import describe_group
from gui.window.runs import QUIET_OPS
from gui.worker import MatrixData, MetricsReport, SessionInfo

GROUP_REFRESH_MS = 150   # ticks change in bursts (All, None, a pattern): count the group once
PROGRESS_REFRESH_MS = 120


class WindowRefresh:
    """Keeps the panels and views in step with what the worker reports.
    A mixin of :class:`gui.main_window.MainWindow`: it uses the widgets and state that
    the window builds."""

    def _on_opened(self, info: SessionInfo) -> None:
        if info.model_spec is not None:
            self.model_spec, self.data_spec = info.model_spec, info.data_spec
            if info.model_spec.path:
                self._remember("model", info.model_spec.path)
        self._pending_open = None
        self._fit_settings_to_model(info.model)
        names = [p.name for p in info.model.prunable]
        self._progress_timer.stop()   # a pending "Opening…" refresh must not overwrite this
        self._latest_progress = None
        self.last_report = None
        # each view in its own turn of the event loop (pacing.py), before any later answer: in one
        # turn, building them and their one repaint held the GUI thread ~110 ms at ResNet-50 size
        self.answers.next_up(
            lambda: self.model_panel.set_model(info.model),
            lambda: (self.histograms.set_original(info.original_snapshot),
                     self.histograms.set_threshold(None)),
            lambda: self.density.set_original(info.original_snapshot),
            lambda: (self.masks.set_parameters(names), self.compare.clear(),
                     # here, on the GUI thread (a lambda connected to the worker's signal would
                     # run on its thread)
                     self.sensitivity.clear(),
                     self.training.reset("Fine-tune to see the loss and accuracy curves here.")),
            lambda: self._after_opened(info))

    def _after_opened(self, info: SessionInfo) -> None:
        self._apply_pending_selection()
        self.setWindowTitle(f"PruneLab — {info.model.description}")
        self.status_label.setText(f"{info.model.description}; {info.data_description}")
        self.set_labels_available(info.has_labels)

    def set_labels_available(self, available: bool) -> None:
        """No-data mode greys out what needs labels, each control saying why in its tooltip."""
        self.labels_available = available
        self.method_panel.set_data_available(available)
        for action in (self.finetune_action, self.scan_action):
            tip = action.property("tip_with_data") or action.toolTip()
            action.setProperty("tip_with_data", tip)
            action.setToolTip(tip if available else f"Unavailable: {NEEDS_LABELS}")
        self._set_busy(self.busy_op)

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

    def _on_sensitivity(self, result) -> None:
        self.sensitivity.set_result(result)

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

    def _on_semi_structured(self, report) -> None:
        self.compare.set_semi_structured(report)
        self.tabs.setCurrentWidget(self.compare)

    def _after_operation(self, op: str) -> None:
        if self.model_panel.group is None and op not in QUIET_OPS:
            self._group_timer.start()   # ticks changed while it ran: count the group now
        if op in ("open", "adopt") and self.masks.data is None:
            self.masks.refresh()   # asked while opening, the worker may have answered before
        group = self.model_panel.group
        if op in ("prune", "finetune") and group is not None:
            text = describe_group(group)
            self.status_label.setText(f"{self.status_label.text()} · {text}")
            self.log_view.append(text)
        elif op == "semi_structured" and self.compare.semi_report is not None:
            self.status_label.setText("2:4 sparse kernels: " + self.compare.semi.text())


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


"""See before you cut, in the window: the pre-flight check, the size/MACs preview beside the
controls, the dependency group of the selected layer with the channels it would lose, and
"Why is it not faster?" from Compare. The engine does the work (engine.structured.preflight,
engine.preview, engine.explain); this mixin turns clicks into requests and answers into text.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

from PySide6.QtCore import QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QPlainTextEdit, QToolBar, QVBoxLayout

from engine.config import RecipeError
from engine.metrics import format_value
from engine.preview import Prediction, SizePreview
from engine.structured.preflight import GroupPlan, group_of
from gui.views.channel_strip import PLANNED, REMOVED, strip_caption, strip_rows
from gui.worker import Request

# Editing a spin box fires on every step; the preview is recomputed at most this often.
PREVIEW_REFRESH_MS = 30
GROUP_REFRESH_MS = 300
GROUP_COLOUR = QColor(255, 236, 170)


def describe_prediction(p: Prediction, what: str) -> str:
    """The preview line beside the controls; marked as predicted, not measured."""
    text = (f"Predicted after {what} (not measured): parameters {format_value(p.params, '')}, "
            f"non-zero {format_value(p.nonzero_params, '')}, file "
            f"{format_value(p.dense_bytes, 'bytes')} (sparse storage "
            f"{format_value(p.sparse_bytes, 'bytes')}), MACs {format_value(p.macs, '')}, "
            f"effective MACs {format_value(p.effective_macs, '')}")
    return text + (f". Estimate: {p.note}" if not p.exact else "")


class TextDialog(QDialog):
    """A non-modal report in a monospaced, selectable text box."""
    def __init__(self, title: str, lines: list[str], parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.text = QPlainTextEdit("\n".join(lines))
        self.text.setReadOnly(True)
        self.text.setFont(QFont("monospace"))
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)
        self.resize(self._width_for(lines), 420)

    def _width_for(self, lines: list[str]) -> int:
        """Wide enough for the longest line (tables stay aligned, hints readable without
        scrolling sideways), at least 900 px; where the screen is narrower, lines wrap instead."""
        metrics = QFontMetrics(self.text.font())
        longest = max((metrics.horizontalAdvance(line) for line in lines), default=0)
        wanted = max(900, longest + 60)   # the text box's frame, margins and scroll bar
        screen = self.screen() or QGuiApplication.primaryScreen()
        room = int(screen.availableGeometry().width() * 0.9) if screen is not None else wanted
        if wanted > room:
            self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        return min(wanted, room)


class WindowForesight:
    """Mixin for MainWindow (see gui/main_window.py)."""

    def _build_foresight(self) -> None:
        self.size_preview: Optional[SizePreview] = None
        self.group_plans: Optional[list[GroupPlan]] = None
        self.removed_channels: dict[str, list[int]] = {}
        self._plans_for = None           # the structured spec the plans were made for
        self._highlighted: list = []
        self._group_layer: Optional[str] = None   # the layer whose channel group is shown
        self.report_dialog: Optional[TextDialog] = None
        self.preflight_action = self._action(
            "Pre-fli&ght check", self.run_preflight, None,
            "Try a small channel removal on every dependency group of a copy of the model: which "
            "can be removed, which must be kept whole and why, with a hint of what to change")
        menus = {m.text(): m.menu() for m in self.menuBar().actions()}
        menus["&Run"].addAction(self.preflight_action)
        self.findChild(QToolBar, "run_toolbar").addAction(self.preflight_action)
        self.compare.explain_button.clicked.connect(self.run_explain)
        w = self.worker
        self.answers.connect(w.preflight, self._on_preflight)
        self.answers.connect(w.explanation, self._on_explanation)
        self.answers.connect(w.size_preview, self._on_size_preview)
        self.answers.connect(w.group_plans, self._on_group_plans)
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(PREVIEW_REFRESH_MS)
        self._preview_timer.timeout.connect(self.update_size_preview)
        panel = self.method_panel
        for signal in (panel.sparsity.valueChanged, panel.scope.currentIndexChanged,
                       panel.st_ratio.valueChanged, panel.st_scope.currentIndexChanged,
                       panel.st_round_to.valueChanged, panel.structured_box.toggled,
                       panel.changed, self.model_panel.selection_changed):
            signal.connect(self._preview_timer.start)
        # the strip follows the channel-removal settings; each change re-plans on a copy of the
        # model (a trace), so a drag of the ratio asks once it settles, one request at a time
        self._group_timer = QTimer(self)
        self._group_timer.setSingleShot(True)
        self._group_timer.setInterval(GROUP_REFRESH_MS)
        self._group_timer.timeout.connect(self._request_group)
        self._group_pending = False
        for signal in (panel.st_ratio.valueChanged, panel.st_importance.currentIndexChanged,
                       panel.st_scope.currentIndexChanged, panel.st_round_to.valueChanged,
                       panel.st_max_layer.valueChanged):
            signal.connect(self._group_timer.start)
        self.sensitivity.proposal_changed.connect(self.preview_proposal)
        self.sensitivity.apply_requested.connect(lambda _targets: self._preview_timer.start())
        self.model_panel.param_selected.connect(self.show_group)
        self.operation_finished.connect(self._after_foresight_op)

    # ------------------------------------------------------------ pre-flight and explainer

    def run_preflight(self) -> bool:
        return self.submit("preflight", spec=self.method_panel.structured_spec())

    def run_explain(self) -> bool:
        return self.submit("explain")

    def _show_report(self, title: str, lines: list[str]) -> None:
        if self.report_dialog is not None:
            self.report_dialog.close()
        self.report_dialog = TextDialog(title, lines, self)
        self.report_dialog.show()

    def _on_preflight(self, report) -> None:
        self.last_preflight = report
        for line in report.lines():
            self.log_view.append(line)
        if self.busy_op == "preflight":   # before a structured prune it goes to the log only
            self._show_report("Pre-flight check", report.lines())

    def _on_explanation(self, explanation) -> None:
        self.last_explanation = explanation
        self._show_report("Why is it (not) faster?", explanation.lines())

    def _after_foresight_op(self, op: str) -> None:
        if op == "preflight":
            self.status_label.setText(self.last_preflight.summary)
        elif op == "explain":
            self.status_label.setText(" ".join(self.last_explanation.verdict[:1]))
        elif op in ("open", "adopt", "open_project"):
            self._group_layer = None   # a new model: its layers are not the old one's
            self._group_pending = False
        elif self.group_plans is None and self._group_layer:
            self._request_group()   # the model changed: show the selected layer's group again

    # ------------------------------------------------------------ size and MACs preview

    def _on_size_preview(self, preview) -> None:
        self.size_preview = preview if isinstance(preview, SizePreview) else None
        self.group_plans, self._plans_for = None, None   # the model changed
        if self.size_preview is None:
            self.method_panel.preview_label.setText(str(preview or ""))
            return
        self.update_size_preview()

    def update_size_preview(self) -> Optional[Prediction]:
        """Recomputes the prediction for the panel's current settings (arithmetic only)."""
        label = self.method_panel.preview_label
        if self.size_preview is None:
            return None
        panel = self.method_panel
        try:
            if panel.structured_box.isChecked():
                spec = panel.structured_spec()
                if not self.size_preview.ops:
                    label.setText("Channel removal cannot trace this model: no preview")
                    return None
                prediction = self.size_preview.channels(spec)
                what = f"removing {spec.ratio:.0%} of channels"
            else:
                spec = panel.prune_spec(self.model_panel.include(), self.model_panel.per_layer())
                prediction = self.size_preview.masks(spec)
                what = ("per-layer targets" if spec.per_layer else f"{spec.sparsity:.0%} "
                        f"{spec.scope} {spec.granularity} pruning")
        except (RecipeError, ValueError) as exc:   # settings that cannot run: say so, no numbers
            label.setText(f"No preview: {str(exc).splitlines()[0]}")
            return None
        label.setText(describe_prediction(prediction, what))
        return prediction

    def preview_proposal(self, proposal: dict) -> Optional[Prediction]:
        """The size and MACs the Sensitivity proposal (with the user's edits) would leave."""
        if self.size_preview is None or not proposal:
            return None
        try:
            # applying a proposal makes the scope local, where per-layer ratios apply
            spec = replace(self.method_panel.prune_spec(sorted(proposal), dict(proposal)),
                           scope="local", min_density=0.0)
            prediction = self.size_preview.masks(spec)
        except (RecipeError, ValueError) as exc:
            self.method_panel.preview_label.setText(f"No preview: {str(exc).splitlines()[0]}")
            return None
        self.method_panel.preview_label.setText(
            describe_prediction(prediction, "the Sensitivity proposal's per-layer ratios"))
        return prediction

    # ------------------------------------------------------------ dependency groups

    def show_group(self, param: str) -> None:
        """Highlights the layers coupled to the selected parameter's layer and lists the channels
        the structured settings would remove; asks the worker for the groups when needed."""
        self._group_layer = param.rsplit(".", 1)[0]
        self._request_group()

    def _request_group(self) -> None:
        if self._group_layer is None or self._group_pending:
            return   # nothing selected, or an answer is on its way (it asks again if stale)
        try:
            spec = self.method_panel.structured_spec()
        except RecipeError:   # settings being edited into something invalid: keep what is shown
            return
        if self.group_plans is None or self._plans_for != spec:
            if self.busy_op is None and self.model_panel.info is not None:
                self._plans_for = spec
                self._group_pending = True
                self.request.emit(Request("group_plans", {"spec": spec}))
            return
        self._show_group_plan()

    def _on_group_plans(self, answer) -> None:
        self._group_pending = False
        plans, self.removed_channels = answer
        if isinstance(plans, str):
            self.masks.group_strip.clear()
            self.masks.group_note.setText(plans)
            return
        self.group_plans = plans
        if self._group_layer:
            self._show_group_plan()
            self._request_group()   # the settings changed while it was planned: plan again

    def _show_group_plan(self) -> None:
        live = {id(item) for item in self.model_panel.module_items.values()}
        for item in self._highlighted:
            if id(item) in live:   # a model change rebuilds the tree and deletes the old items
                item.setBackground(0, QBrush())
        self._highlighted = []
        earlier = self.removed_channels.get(self._group_layer)
        before = (f"Channel removal already took original output channels {_ranges(earlier)} "
                  f"of {self._group_layer}. " if earlier else "")
        plan = group_of(self.group_plans or [], self._group_layer)
        if plan is None:
            self.masks.group_strip.clear()
            self.masks.group_note.setText(f"{before}{self._group_layer}: in no channel group (its "
                                          f"channels are kept)")
            return
        rows = strip_rows(plan, self.removed_channels)
        if rows:
            self.masks.group_strip.set_rows(rows, strip_caption(self._group_layer, rows,
                                                                self._plans_for))
        else:
            self.masks.group_strip.clear()
        items = self.model_panel.module_items
        for name in plan.coupled():
            if name in items:
                items[name].setBackground(0, QBrush(GROUP_COLOUR))
                self._highlighted.append(items[name])
        # the root's channels in original numbering (after a removal the plan counts survivors)
        root = next((r for r in rows if plan.root in r.layers), None)
        removed = root.indices(PLANNED) if root is not None else plan.remove.get(plan.root, [])
        width = plan.widths.get(plan.root, 0)
        self.masks.group_note.setText(
            f"{before}Channel group of {self._group_layer} (root {plan.root}, {len(plan.coupled())} "
            f"coupled layers, highlighted in the model tree): removing "
            f"{len(removed)} of {width} channels would remove "
            f"{'original ' if earlier or (root is not None and root.indices(REMOVED)) else ''}"
            f"indices {_ranges(removed)}")


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    out, start = [], None
    for i, value in enumerate(indices):
        if start is None:
            start = value
        if i + 1 == len(indices) or indices[i + 1] != value + 1:
            out.append(f"{start}" if start == value else f"{start}-{value}")
            start = None
    return ", ".join(out) or "none"

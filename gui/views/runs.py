"""Runs: every stored run of the open model on a Pareto chart (accuracy against a cost of the
user's choice), the undo steps since it was opened, restore by click, and a diff of two runs."""
from __future__ import annotations

import time
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel,
                               QListWidget, QPushButton, QSplitter, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from gui.combo import compact
from gui.views import CURRENT_COLOR, ORIGINAL_COLOR

# (metrics key, label, lower is better) — the cost axes; accuracy and F1 are the quality axes
COST_AXES = (("macs", "MACs", True), ("effective_macs", "Effective MACs", True),
             ("latency_ms", "Latency (ms)", True), ("dense_bytes", "Size, dense (bytes)", True),
             ("sparse_bytes", "Size, sparse storage (bytes)", True),
             ("nonzero_params", "Non-zero parameters", True))
QUALITY_AXES = (("accuracy", "Accuracy"), ("f1", "Macro F1"))


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (lower cost x, higher quality y), by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def diff_rows(a, b) -> list[tuple[str, str, str, str]]:
    """(what, run A, run B, B / A) for the figures, then each layer's sparsity and width."""
    rows = []
    for key, label, _ in (("accuracy", "Accuracy", False),) + COST_AXES:
        va, vb = a.metrics.get(key), b.metrics.get(key)
        ratio = f"{vb / va:.2f}x" if va and vb is not None else ""
        rows.append((label, _fmt(key, va), _fmt(key, vb), ratio))
    for name in sorted(set(a.layer_sparsity) | set(b.layer_sparsity)):
        sa, sb = a.layer_sparsity.get(name), b.layer_sparsity.get(name)
        rows.append((f"{name} sparsity", _pct(sa), _pct(sb), ""))
    for name in sorted(set(a.layer_widths) | set(b.layer_widths)):
        wa, wb = a.layer_widths.get(name), b.layer_widths.get(name)
        rows.append((f"{name} width", f"{wa[0]}→{wa[1]}" if wa else "unchanged",
                     f"{wb[0]}→{wb[1]}" if wb else "unchanged", ""))
    return rows


def _pct(v) -> str:
    return "" if v is None else f"{v:.1%}"


def _fmt(key: str, v) -> str:
    if v is None:
        return "no data"
    if key in ("accuracy", "f1"):
        return f"{v:.2%}"
    if key == "latency_ms":
        return f"{v:.3f} ms"
    return f"{v:,.0f}"


class RunsView(QWidget):
    restore_requested = Signal(int)   # a run id
    back_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.runs: list = []
        self.x_axis = QComboBox()
        for key, label, _ in COST_AXES:
            self.x_axis.addItem(label, key)
        self.x_axis.setCurrentIndex(1)   # effective MACs: what masks and removal both change
        self.y_axis = QComboBox()
        for key, label in QUALITY_AXES:
            self.y_axis.addItem(label, key)
        for box in (self.x_axis, self.y_axis):
            compact(box, 12)
            box.currentIndexChanged.connect(self._redraw)
        self.plot = pg.PlotWidget()
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.front = pg.PlotCurveItem(pen=pg.mkPen(*CURRENT_COLOR, width=2))
        self.points = pg.ScatterPlotItem(size=11, hoverable=True, hoverSize=15,
                                         brush=pg.mkBrush(*ORIGINAL_COLOR),
                                         tip=self._tip)
        self.points.sigClicked.connect(self._on_click)
        self.plot.addItem(self.front)
        self.plot.addItem(self.points)
        self.caption = QLabel("No stored runs of this model yet: each Prune, Fine-tune and Measure "
                              "adds one. Click a point to restore that run.")
        self.caption.setWordWrap(True)

        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Run", "When", "Accuracy", "Cost"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().hide()
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.restore_button = QPushButton("Restore")
        self.restore_button.setToolTip("Make the selected run's model the current one (Back "
                                       "returns to the model before)")
        self.restore_button.clicked.connect(self._restore_selected)
        self.diff = QTableWidget(0, 4)
        self.diff.setHorizontalHeaderLabels(["", "A", "B", "B / A"])
        self.diff.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.diff.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.diff.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.diff.verticalHeader().hide()
        self.diff_label = QLabel("Select two runs to compare them layer by layer.")
        self.diff_label.setWordWrap(True)
        self.steps = QListWidget()
        self.steps.setToolTip("Every operation since the model was opened; Back (Ctrl+Z) returns "
                              "to the one before the last")
        self.back_button = QPushButton("Back")
        self.back_button.setToolTip("Return to the model before the last operation (Ctrl+Z)")
        self.back_button.clicked.connect(self.back_requested)

        axes = QHBoxLayout()
        axes.addWidget(QLabel("Quality:"))
        axes.addWidget(self.y_axis)
        axes.addWidget(QLabel("against cost:"))
        axes.addWidget(self.x_axis, 1)
        chart = QWidget()
        chart_layout = QVBoxLayout(chart)
        chart_layout.setContentsMargins(0, 0, 0, 0)
        chart_layout.addLayout(axes)
        chart_layout.addWidget(self.plot, 1)
        chart_layout.addWidget(self.caption)
        runs = QWidget()
        runs_layout = QVBoxLayout(runs)
        runs_layout.setContentsMargins(0, 0, 0, 0)
        runs_layout.addWidget(self.table, 1)
        runs_layout.addWidget(self.restore_button)
        diff = QWidget()
        diff_layout = QVBoxLayout(diff)
        diff_layout.setContentsMargins(0, 0, 0, 0)
        diff_layout.addWidget(self.diff_label)
        diff_layout.addWidget(self.diff, 1)
        steps = QWidget()
        steps_layout = QVBoxLayout(steps)
        steps_layout.setContentsMargins(0, 0, 0, 0)
        steps_title = QLabel("Steps since the model was opened:")
        steps_title.setWordWrap(True)
        steps_layout.addWidget(steps_title)
        steps_layout.addWidget(self.steps, 1)
        steps_layout.addWidget(self.back_button)
        # the chart on top; the runs beside the undo steps under it; the diff of two runs below
        # (the centre of the window is ~600 px wide on a 1280-px screen: panes are stacked)
        middle = QSplitter(Qt.Orientation.Horizontal)
        middle.addWidget(runs)
        middle.addWidget(steps)
        middle.setSizes([650, 350])   # proportions: the splitter scales them to its width
        outer = QSplitter(Qt.Orientation.Vertical)
        for pane in (chart, middle, diff):
            outer.addWidget(pane)
        outer.setSizes([500, 250, 250])
        layout = QVBoxLayout(self)
        layout.addWidget(outer)
        self.set_steps([])
        self._on_selection()

    # ------------------------------------------------------------ data in

    def set_runs(self, runs: list) -> None:
        self.runs = list(runs)
        self.table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created))
            for col, text in enumerate((run.label, when, _fmt("accuracy", run.metrics.get("accuracy")),
                                        "")):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, run.id)
                self.table.setItem(row, col, item)
        self._redraw()

    def set_steps(self, labels: list[str]) -> None:
        self.steps.clear()
        self.steps.addItem("original")
        self.steps.addItems(labels)
        self.steps.setCurrentRow(self.steps.count() - 1)
        self.back_button.setEnabled(bool(labels))

    # ------------------------------------------------------------ drawing

    def _values(self) -> tuple[list[int], list[tuple[float, float]]]:
        xk, yk = self.x_axis.currentData(), self.y_axis.currentData()
        idx, pts = [], []
        for i, run in enumerate(self.runs):
            x, y = run.metrics.get(xk), run.metrics.get(yk)
            if x is None or y is None or not np.isfinite([x, y]).all():
                continue
            idx.append(i)
            pts.append((float(x), float(y)))
        return idx, pts

    def _redraw(self) -> None:
        xk = self.x_axis.currentData()
        idx, pts = self._values()
        for row, run in enumerate(self.runs):
            item = self.table.item(row, 3)
            if item is not None:
                item.setText(_fmt(xk, run.metrics.get(xk)))
        self.plot.setLabel("bottom", self.x_axis.currentText())
        self.plot.setLabel("left", self.y_axis.currentText())
        self.points.setData([{"pos": p, "data": self.runs[i].id} for i, p in zip(idx, pts)])
        front = pareto_front(pts)
        self.front.setData([pts[i][0] for i in front], [pts[i][1] for i in front])
        if self.runs:
            self.caption.setText(f"{len(self.runs)} stored run(s) of this model, {len(front)} on "
                                 f"the Pareto front (line): none of the others is both cheaper and "
                                 f"better. Click a point to restore that run; hover for its "
                                 f"figures.")

    def _run(self, run_id: int):
        return next((r for r in self.runs if r.id == run_id), None)

    def _tip(self, x, y, data) -> str:
        run = self._run(data)
        if run is None:
            return ""
        return (f"{run.label}\n{self.y_axis.currentText()}: {_fmt(self.y_axis.currentData(), y)}\n"
                f"{self.x_axis.currentText()}: {_fmt(self.x_axis.currentData(), x)}\n"
                f"click to restore")

    def _on_click(self, _item, points, _ev=None) -> None:
        if len(points):
            self.restore_requested.emit(int(points[0].data()))

    # ------------------------------------------------------------ table

    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.table.selectedItems()})
        return [self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in rows]

    def _restore_selected(self) -> None:
        ids = self.selected_ids()
        if len(ids) == 1:
            self.restore_requested.emit(ids[0])

    def _on_selection(self) -> None:
        ids = self.selected_ids()
        self.restore_button.setEnabled(len(ids) == 1)
        runs = [self._run(i) for i in ids]
        if len(runs) != 2 or None in runs:
            self.diff.setRowCount(0)
            self.diff_label.setText("Select two runs to compare them layer by layer.")
            return
        a, b = runs
        self.diff_label.setText(f"A: {a.label}   B: {b.label}")
        rows = diff_rows(a, b)
        self.diff.setRowCount(len(rows))
        for r, values in enumerate(rows):
            for c, text in enumerate(values):
                self.diff.setItem(r, c, QTableWidgetItem(text))

    def point_for(self, run_id: int) -> Optional[tuple[float, float]]:
        """Where a run's point is drawn (for tests and scripts)."""
        for p in self.points.points():
            if p.data() == run_id:
                return p.pos().x(), p.pos().y()
        return None

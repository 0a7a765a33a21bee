"""Sensitivity scan: validation accuracy against sparsity when each layer is pruned alone, one curve per
layer, and per-layer ratios proposed from the curves for a target sparsity, editable before they
become the model panel's per-parameter targets.

The view only shows results and collects settings; the scan itself runs in the worker
(``Session.sensitivity_scan``) and the proposal is ``engine.pruning.sensitivity.propose_ratios``.
"""
from __future__ import annotations

from typing import Optional

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QDoubleSpinBox, QHBoxLayout, QHeaderView, QLabel,
                               QPushButton, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem,
                               QToolButton, QVBoxLayout, QWidget)

from engine.pruning.base import PruneError
from engine.pruning.sensitivity import SensitivityResult, predicted_drop, propose_ratios
from gui.views import ORIGINAL_COLOR

COL_LAYER, COL_WEIGHTS, COL_SPARSITY, COL_DROP = range(4)


def grid_values(start: float, stop: float, step: float) -> list[float]:
    """Sparsities from ``start`` to ``stop`` (inclusive, within rounding) every ``step``, as
    fractions rounded to 4 decimals; a step of 0 or a stop below the start gives just ``start``."""
    if step <= 0 or stop <= start:
        return [round(start, 4)]
    count = int((stop - start) / step + 1e-6)
    values = [round(start + i * step, 4) for i in range(count + 1)]
    if stop - values[-1] > 1e-6:
        values.append(round(stop, 4))
    return values


def _percent_box(value: float, minimum: float, maximum: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(minimum, maximum)
    box.setDecimals(1)
    box.setSingleStep(5.0)
    box.setSuffix(" %")
    box.setValue(value)
    box.setToolTip(tip)
    return box


# what SensitivityResult.split means in words (test only when the data holds nothing out)
_SPLIT_NAMES = {"val": "validation", "test": "test"}


class SensitivityView(QWidget):
    """``propose_failed(title, message)`` asks the window for an error dialog; ``apply_requested``
    carries the (possibly edited) proposal {parameter: sparsity} to write into the targets."""
    propose_failed = Signal(str, str)
    apply_requested = Signal(object)
    proposal_changed = Signal(object)   # the proposal {parameter: sparsity} after each edit

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.result: Optional[SensitivityResult] = None
        self.proposal: dict[str, float] = {}
        self.rows: dict[str, QDoubleSpinBox] = {}

        self.grid_from = _percent_box(10.0, 1.0, 99.0, "Lowest sparsity of the scan grid")
        self.grid_to = _percent_box(90.0, 1.0, 99.0, "Highest sparsity of the scan grid: a target "
                                    "can only be proposed up to this")
        self.grid_step = _percent_box(10.0, 1.0, 98.0, "Distance between grid points; every layer "
                                      "is pruned and evaluated once per point")
        self.eval_batches = QSpinBox()
        self.eval_batches.setRange(0, 100_000)
        self.eval_batches.setSpecialValueText("all")
        self.eval_batches.setToolTip("Validation batches (256 samples each) per evaluation; fewer "
                                     "make the scan faster and the curves noisier. 'all' uses the "
                                     "whole validation split (held out of the training data; the "
                                     "scan chooses ratios, so it never looks at the test split).")
        self.scan_button = QToolButton()   # shows the window's Scan action (set_scan_action)
        self.scan_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.target = _percent_box(70.0, 1.0, 99.0, "Sparsity to reach over the scanned layers, "
                                   "counted by weights")
        self.propose_button = QPushButton("Propose ratios")
        self.propose_button.setToolTip("Per-layer sparsities that meet the target with the least "
                                       "predicted accuracy drop (drops of layers add up; each "
                                       "layer stays within the scanned grid)")
        self.apply_button = QPushButton("Apply to layers")
        self.apply_button.setToolTip("Write the proposal (with your edits) into the model panel's "
                                     "per-parameter targets, tick those layers and set the scope "
                                     "to local; then Prune uses them")

        # two rows (the grid; how much to evaluate and Scan) so the tab stays narrow for a laptop
        grid_row, scan_row = QHBoxLayout(), QHBoxLayout()
        for row, label, widget in ((grid_row, "Grid from", self.grid_from),
                                   (grid_row, "to", self.grid_to), (grid_row, "step", self.grid_step),
                                   (scan_row, "Eval batches", self.eval_batches)):
            text = QLabel(label)
            text.setToolTip(widget.toolTip())
            row.addWidget(text)
            row.addWidget(widget)
        scan_row.addWidget(self.scan_button)
        grid_row.addStretch(1)
        scan_row.addStretch(1)
        controls = QVBoxLayout()
        controls.addLayout(grid_row)
        controls.addLayout(scan_row)
        # the proposal's controls sit over its table, so the tab stays narrow enough for a laptop
        proposal_controls = QHBoxLayout()
        proposal_controls.addWidget(QLabel("Target"))
        proposal_controls.addWidget(self.target)
        proposal_controls.addWidget(self.propose_button)
        proposal_controls.addWidget(self.apply_button)
        proposal_controls.addStretch(1)

        self.status = QLabel("Scan to see how much accuracy each layer loses when pruned alone "
                             "(method panel's criterion and granularity, ticked layers).")
        self.status.setWordWrap(True)

        self.plot = pg.PlotWidget(title="Validation accuracy when one layer is pruned alone")
        self.plot.setLabel("bottom", "sparsity of the layer", units="%")
        self.plot.setLabel("left", "validation accuracy", units="%")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        # bottom left: curves start high on the left and fall on the right
        self.legend = self.plot.addLegend(offset=(10, -10), brush=pg.mkBrush(255, 255, 255, 220))
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.baseline_line = pg.InfiniteLine(
            angle=0, movable=False,
            pen=pg.mkPen(ORIGINAL_COLOR, width=1.5, style=Qt.PenStyle.DashLine),
            label="unpruned {value:.2f}%", labelOpts={"position": 0.2, "color": (90, 90, 90)})
        self.baseline_line.hide()
        self.plot.addItem(self.baseline_line)

        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Layer", "Weights", "Sparsity", "Predicted drop"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        for col in (COL_LAYER, COL_WEIGHTS, COL_SPARSITY):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_DROP, QHeaderView.ResizeMode.Stretch)
        for col, tip in ((COL_LAYER, "Scanned parameter"), (COL_WEIGHTS, "Its number of weights"),
                         (COL_SPARSITY, "Proposed sparsity; edit it before applying"),
                         (COL_DROP, "Accuracy this layer alone is predicted to lose at that "
                                    "sparsity (interpolated from its curve), percentage points")):
            self.table.horizontalHeaderItem(col).setToolTip(tip)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.addLayout(proposal_controls)
        right_layout.addWidget(self.table)
        right_layout.addWidget(self.summary)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.plot)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([600, 400])
        self.splitter = splitter
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.status)
        layout.addWidget(splitter, 1)

        self.propose_button.clicked.connect(lambda: self.propose(self.target.value() / 100))
        self.apply_button.clicked.connect(self._request_apply)
        self._update_buttons()

    # ------------------------------------------------------------ settings

    def set_scan_action(self, action) -> None:
        """The button runs (and follows the enabled state of) the window's Scan action."""
        self.scan_button.setDefaultAction(action)

    def grid(self) -> list[float]:
        return grid_values(self.grid_from.value() / 100, self.grid_to.value() / 100,
                           self.grid_step.value() / 100)

    def set_grid(self, values: list[float]) -> None:
        """Shows an evenly spaced grid (e.g. [0.5, 0.9]) in the three boxes."""
        values = sorted(values)
        self.grid_from.setValue(values[0] * 100)
        self.grid_to.setValue(values[-1] * 100)
        self.grid_step.setValue((values[1] - values[0]) * 100 if len(values) > 1 else 0)

    def max_eval_batches(self) -> Optional[int]:
        return self.eval_batches.value() or None

    # ------------------------------------------------------------ results

    def clear(self) -> None:
        """A new model: the old curves no longer describe it."""
        self.result = None
        self.proposal = {}
        for curve in self.curves.values():
            self.plot.removeItem(curve)
        self.legend.clear()
        self.curves.clear()
        self.baseline_line.hide()
        self.table.setRowCount(0)
        self.rows.clear()
        self.summary.setText("")
        self._update_buttons()

    def set_result(self, result: SensitivityResult) -> None:
        self.clear()
        self.result = result
        count = len(result.curves)
        for i, (name, points) in enumerate(result.curves.items()):
            color = pg.intColor(i, hues=max(count, 1), values=1, maxValue=200)
            xs = [s * 100 for s, _ in points]
            ys = [a * 100 for _, a in points]
            self.curves[name] = self.plot.plot(xs, ys, pen=pg.mkPen(color, width=2), symbol="o",
                                               symbolSize=6, symbolBrush=color, name=name)
        self.baseline_line.show()   # before setValue: a hidden line does not update its label
        self.baseline_line.setValue(result.baseline * 100)
        self.plot.setXRange(0, max(result.grid) * 100 + 2)
        self.status.setText(
            f"{count} layer(s) scanned with {result.method} / {result.granularity} at "
            f"{', '.join(f'{s:.0%}' for s in result.grid)} on a copy of the current model "
            f"(unpruned {_SPLIT_NAMES.get(result.split, result.split)} accuracy "
            f"{result.baseline:.2%}). Choose a target and propose ratios.")
        name = _SPLIT_NAMES.get(result.split, result.split)
        self.plot.setTitle(f"{name.capitalize()} accuracy when one layer is pruned alone")
        self.plot.setLabel("left", f"{name} accuracy", units="%")
        self._update_buttons()

    def curve_points(self, name: str) -> list[tuple[float, float]]:
        """The plotted (sparsity %, accuracy %) points of one layer's curve."""
        xs, ys = self.curves[name].getData()
        return [(float(x), float(y)) for x, y in zip(xs, ys)]

    # ------------------------------------------------------------ proposal

    def propose(self, target: float) -> bool:
        """Fills the table with ratios meeting ``target``; a target the grid cannot reach is
        explained in a dialog (through ``propose_failed``)."""
        if self.result is None:
            return False
        try:
            proposal = propose_ratios(self.result, target)
        except PruneError as exc:
            self.propose_failed.emit("Cannot propose ratios", str(exc))
            return False
        self.show_proposal(proposal)
        return True

    def show_proposal(self, proposal: dict[str, float]) -> None:
        self.proposal = dict(proposal)
        self.table.setRowCount(0)
        self.rows.clear()
        for name, value in proposal.items():
            row = self.table.rowCount()
            self.table.insertRow(row)
            self.table.setItem(row, COL_LAYER, QTableWidgetItem(name))
            weights = QTableWidgetItem(f"{self.result.layer_sizes[name]:,}")
            weights.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, COL_WEIGHTS, weights)
            box = _percent_box(value * 100, 0.0, max(self.result.grid) * 100,
                               f"Sparsity of {name}; edit before applying")
            box.setDecimals(2)
            box.setSingleStep(1.0)
            # the exact proposal is kept until the user edits the row (the box shows 2 decimals)
            box.valueChanged.connect(lambda v, n=name: self._edit(n, v / 100))
            self.table.setCellWidget(row, COL_SPARSITY, box)
            drop = QTableWidgetItem()
            drop.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, COL_DROP, drop)
            self.rows[name] = box
        self._refresh_drops()
        self._update_buttons()
        self.proposal_changed.emit(dict(self.proposal))

    def set_layer_sparsity(self, name: str, value: float) -> None:
        """Edits one row as a user would (the box shows percent)."""
        self.rows[name].setValue(value * 100)

    def _edit(self, name: str, value: float) -> None:
        self.proposal[name] = value
        self._refresh_drops()
        self.proposal_changed.emit(dict(self.proposal))

    def overall_sparsity(self) -> float:
        """The proposal's sparsity over the scanned layers, counted by weights."""
        sizes = self.result.layer_sizes
        total = sum(sizes[n] for n in self.proposal)
        return sum(sizes[n] * s for n, s in self.proposal.items()) / total if total else 0.0

    def _refresh_drops(self) -> None:
        for row in range(self.table.rowCount()):
            name = self.table.item(row, COL_LAYER).text()
            drop = predicted_drop(self.result, {name: self.proposal[name]})
            self.table.item(row, COL_DROP).setText(f"{drop * 100:.2f} pp")
        total = predicted_drop(self.result, self.proposal)
        self.summary.setText(
            f"Proposal: {self.overall_sparsity():.2%} of the scanned layers' weights zero; "
            f"predicted accuracy {(self.result.baseline - total):.2%} (drop {total * 100:.2f} pp, "
            f"the per-layer drops added up).")

    def _request_apply(self) -> None:
        if self.proposal:
            self.apply_requested.emit(dict(self.proposal))

    def _update_buttons(self) -> None:
        self.propose_button.setEnabled(self.result is not None)
        self.target.setEnabled(self.result is not None)
        self.apply_button.setEnabled(bool(self.proposal))

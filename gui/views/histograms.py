"""Per-layer weight histograms, before (original model) and after (now) overlaid on the same bins.

All layers appear as small multiples (gui/views/thumbnails.py, painted by one widget); the
selected layer is drawn large. Fed by throttled
:class:`~engine.snapshots.WeightSnapshot` s, so it follows pruning and fine-tuning live.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QScrollArea, QSplitter,
                               QVBoxLayout, QWidget)

from engine.snapshots import LayerHistogram, WeightSnapshot
from gui.combo import fit_popup
from gui.views import CURRENT_COLOR, ORIGINAL_COLOR
from gui.views.thumbnails import HistogramThumbnails



def _pen(color, width=1.5):
    return pg.mkPen(color=color, width=width)


def _brush(color, alpha):
    return pg.mkBrush(*color, alpha)


class _HistogramPair:
    """Two step curves (before, after) in one plot; created once, then only setData."""

    def __init__(self, plot: pg.PlotItem, legend: bool = False) -> None:
        if legend:
            plot.addLegend(offset=(-10, 10), brush=pg.mkBrush(255, 255, 255, 220),
                           pen=pg.mkPen(200, 200, 200))
        plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.before = plot.plot(stepMode="center", fillLevel=0, pen=_pen(ORIGINAL_COLOR),
                                brush=_brush(ORIGINAL_COLOR, 70), name="original")
        self.after = plot.plot(stepMode="center", fillLevel=0, pen=_pen(CURRENT_COLOR, 2),
                               brush=_brush(CURRENT_COLOR, 60), name="now")
        self.plot = plot
        # the global magnitude threshold: weights with |w| below it were pruned, in every layer
        pen = pg.mkPen(color=(214, 39, 40), width=1, style=Qt.PenStyle.DashLine)
        self.thresholds = [pg.InfiniteLine(angle=90, movable=False, pen=pen) for _ in range(2)]
        for line in self.thresholds:
            line.hide()
            plot.addItem(line, ignoreBounds=True)
        # Ranges are set by hand, and only when the data outgrow them or shrink a lot: with
        # auto-range every live update re-laid out both axes, the costliest part of a repaint.
        plot.disableAutoRange()
        self.y_top = 0.0
        self.x_span: tuple[float, float] = (0.0, 0.0)

    def set_threshold(self, value: Optional[float]) -> None:
        for line, sign in zip(self.thresholds, (-1, 1)):
            line.setVisible(value is not None)
            if value is not None:
                line.setValue(sign * value)

    def set(self, before: Optional[LayerHistogram], after: Optional[LayerHistogram],
            nonzero_only: bool) -> None:
        top = 0.0
        for curve, hist in ((self.before, before), (self.after, after)):
            if hist is None:
                curve.setData([], [])
                continue
            counts = hist.counts_nonzero if nonzero_only else hist.counts
            curve.setData(hist.edges, counts.astype(np.float64))
            top = max(top, float(counts.max(initial=0)))
            span = (float(hist.edges[0]), float(hist.edges[-1]))
            if span != self.x_span:
                self.x_span = span
                self.plot.setXRange(*span, padding=0.02)
        top = max(top, 1.0)
        if top > self.y_top or top < 0.6 * self.y_top:
            self.y_top = top * 1.08
            self.plot.setYRange(0, self.y_top, padding=0)


class HistogramView(QWidget):
    layer_selected = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.original: Optional[WeightSnapshot] = None
        self.current: Optional[WeightSnapshot] = None
        self.updates = 0  # how many snapshots were drawn (tests check live updates)

        self.nonzero = QCheckBox("Non-zero only")
        self.nonzero.setChecked(True)
        self.nonzero.setToolTip("Count only non-zero weights. Pruned weights are exactly zero and "
                                "form one tall bar at 0 that hides the shape of what is left; "
                                "untick to see that bar.")
        self.layer = QComboBox()
        self.layer.setToolTip("The layer drawn large. Click a small plot to pick it too.")
        self.layer.setMinimumContentsLength(18)
        self.info = QLabel()
        # wraps rather than widening the window when a long layer summary is shown
        self.info.setWordWrap(True)
        self.info.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        top = QHBoxLayout()
        top.addWidget(QLabel("Layer:"))
        top.addWidget(self.layer)
        top.addWidget(self.nonzero)
        top.addWidget(self.info, 1)
        self.hover = QLabel("Hover the large plot for a bin's range and counts")
        self.threshold: Optional[float] = None

        self.big = pg.PlotWidget()
        self.big.setLabel("bottom", "weight value")
        self.big.setLabel("left", "count")
        self.big.showGrid(x=True, y=True, alpha=0.2)
        self.big_pair = _HistogramPair(self.big.getPlotItem(), legend=True)

        self.thumbnails = HistogramThumbnails()
        self.thumbnails.setToolTip("Every layer's histogram; click one to draw it large.")
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.thumbnails)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.big)
        splitter.addWidget(self.scroll)
        splitter.setSizes([420, 380])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(splitter)
        layout.addWidget(self.hover)
        self.big.scene().sigMouseMoved.connect(self._on_mouse)

        self.nonzero.toggled.connect(self._redraw)
        self.layer.currentTextChanged.connect(self._on_layer)
        self.thumbnails.clicked.connect(self.select)

    # ------------------------------------------------------------ data in

    def set_original(self, snapshot: WeightSnapshot) -> None:
        self.original = snapshot
        self.current = None
        names = [layer.name for layer in snapshot.layers]
        self.layer.blockSignals(True)
        self.layer.clear()
        self.layer.addItems(names)
        fit_popup(self.layer)
        self.layer.blockSignals(False)
        self.thumbnails.set_layers(names)
        self._redraw()

    def update_snapshot(self, snapshot: WeightSnapshot) -> None:
        self.current = snapshot
        self.updates += 1
        self._redraw()

    def select(self, name: str) -> None:
        if self.layer.findText(name) >= 0:
            self.layer.setCurrentText(name)

    def set_threshold(self, value: Optional[float]) -> None:
        """Draws ±``value`` (a global magnitude threshold) on every histogram; None hides it."""
        self.threshold = value
        self.big_pair.set_threshold(value)
        self.thumbnails.set_threshold(value)
        self.big_pair.plot.setTitle(self.layer.currentText() + (
            f"  (global threshold |w| = {value:.4g})" if value is not None else ""))

    def readout_at(self, x: float) -> str:
        """The selected layer's bin under weight value ``x``: its range and counts."""
        name = self.layer.currentText()
        if self.original is None or name not in self.original.histograms:
            return ""
        nonzero = self.nonzero.isChecked()
        hists = [("original", self.original.histograms.get(name))]
        if self.current is not None:
            hists.append(("now", self.current.histograms.get(name)))
        edges = hists[0][1].edges
        i = int(np.searchsorted(edges, x, side="right")) - 1
        if not 0 <= i < len(edges) - 1:
            return ""
        counts = [f"{label} {int((h.counts_nonzero if nonzero else h.counts)[i]):,}"
                  for label, h in hists if h is not None]
        return f"{name}: bin [{edges[i]:.4g}, {edges[i + 1]:.4g}): " + ", ".join(counts)

    def _on_mouse(self, pos) -> None:
        if not self.big.sceneBoundingRect().contains(pos):
            return
        x = self.big.getPlotItem().getViewBox().mapSceneToView(pos).x()
        self.hover.setText(self.readout_at(x) or " ")

    # ------------------------------------------------------------ drawing

    def _redraw(self, *_: object) -> None:
        if self.original is None:
            return
        self._draw_big()
        self.thumbnails.set_histograms(self.original.histograms,
                                       self.current.histograms if self.current is not None else {},
                                       self.nonzero.isChecked())

    def _draw_big(self) -> None:
        name = self.layer.currentText()
        if not name or self.original is None:
            return
        after = self.current.histograms.get(name) if self.current is not None else None
        self.big_pair.set(self.original.histograms.get(name), after, self.nonzero.isChecked())
        self.big.setTitle(name + (f"  (global threshold |w| = {self.threshold:.4g})"
                                  if self.threshold is not None else ""))
        snapshot = self.current or self.original
        layer = next((l for l in snapshot.layers if l.name == name), None)
        if layer is not None:
            bad = _nonfinite(after or self.original.histograms.get(name))
            self.info.setText(f"{layer.module_type} {tuple(layer.shape)}: "
                              f"{layer.nonzero:,} of {layer.numel:,} non-zero "
                              f"({layer.density:.1%} density)"
                              + (f"; {bad:,} NaN/inf weight(s) not drawn (finite values only)"
                                 if bad else ""))

    def _on_layer(self, name: str) -> None:
        self._draw_big()
        if name:
            self.layer_selected.emit(name)


def _nonfinite(hist) -> int:
    """NaN/inf weights the histogram left out (engine.snapshots bins finite values only)."""
    return getattr(hist, "nonfinite", 0) if hist is not None else 0

"""Per-layer density (fraction of non-zero weights) as bars: the original model against now."""
from __future__ import annotations

from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from engine.snapshots import WeightSnapshot
from gui.views import CURRENT_COLOR, ORIGINAL_COLOR

BAR_WIDTH = 0.38


MAX_BAR_LABELS = 24


class DensityView(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.names: list[str] = []
        self.original: Optional[WeightSnapshot] = None
        self.current: Optional[WeightSnapshot] = None
        self.plot = pg.PlotWidget()
        self.plot.setLabel("left", "density (non-zero / original count)")
        self.plot.setYRange(0, 1.12, padding=0)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.showGrid(y=True, alpha=0.2)
        self.plot.addLegend(offset=(-10, 10), brush=pg.mkBrush(255, 255, 255, 220),
                            pen=pg.mkPen(200, 200, 200))
        self.original_bars = pg.BarGraphItem(x=[], height=[], width=BAR_WIDTH,
                                             brush=pg.mkBrush(*ORIGINAL_COLOR), name="original")
        self.current_bars = pg.BarGraphItem(x=[], height=[], width=BAR_WIDTH,
                                            brush=pg.mkBrush(*CURRENT_COLOR), name="now")
        self.plot.addItem(self.original_bars)
        self.plot.addItem(self.current_bars)
        self.labels: list[pg.TextItem] = []
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.hover = QLabel("Hover a bar for its layer and density")
        layout = QVBoxLayout(self)
        layout.addWidget(self.plot)
        layout.addWidget(self.hover)
        layout.addWidget(self.summary)
        self.plot.scene().sigMouseMoved.connect(self._on_mouse)

    def readout_at(self, x: float) -> str:
        """The layer whose bars are at ``x`` (bar positions are the layer indices)."""
        i = int(round(x))
        if not self.names or not 0 <= i < len(self.names) or abs(x - i) > 0.5:
            return ""
        before, after = self.densities()[self.names[i]]
        return f"{self.names[i]}: density now {after:.2%}, original {before:.2%}"

    def _on_mouse(self, pos) -> None:
        if not self.plot.sceneBoundingRect().contains(pos):
            return
        x = self.plot.getPlotItem().getViewBox().mapSceneToView(pos).x()
        self.hover.setText(self.readout_at(x) or " ")

    def set_original(self, snapshot: WeightSnapshot) -> None:
        self.original = snapshot
        self.current = None
        self.names = [layer.name for layer in snapshot.layers]
        for label in self.labels:
            self.plot.removeItem(label)
        self.labels = []
        # a value over every bar reads only while the bars are wide enough; past that the labels
        # overlap and each TextItem costs the GUI thread a few ms (ResNet-50: 54, 150 ms), so
        # many layers are read by hovering instead
        for _ in (self.names if len(self.names) <= MAX_BAR_LABELS else ()):
            label = pg.TextItem(anchor=(0.5, 1.0), color=(20, 20, 20))
            self.plot.addItem(label)
            self.labels.append(label)
        if len(self.names) <= MAX_BAR_LABELS:
            ticks = [(i, n) for i, n in enumerate(self.names)]
            self.plot.setLabel("bottom", "")
        else:   # ResNet-50's 54 names printed over each other: numbers, names on hover
            step = -(-len(self.names) // 12)
            ticks = [(i, str(i)) for i in range(0, len(self.names), step)]
            self.plot.setLabel("bottom", "layer number (hover a bar for its name)")
        self.plot.getAxis("bottom").setTicks([ticks])
        self.plot.setXRange(-0.6, len(self.names) - 0.4, padding=0)
        self._redraw()

    def update_snapshot(self, snapshot: WeightSnapshot) -> None:
        self.current = snapshot
        self._redraw()

    def densities(self) -> dict[str, tuple[float, float]]:
        """(original, now) per layer, read back from the bars actually drawn."""
        before = self.original_bars.opts["height"]
        after = self.current_bars.opts["height"]
        return {name: (float(before[i]), float(after[i])) for i, name in enumerate(self.names)}

    def _redraw(self) -> None:
        if self.original is None:
            return
        x = np.arange(len(self.names), dtype=float)
        before = np.array([self.original.density(n) for n in self.names])
        now_snapshot = self.current or self.original
        # relative to the original size, so channel removal (smaller tensors) shows as lost weights
        original_numel = {layer.name: layer.numel for layer in self.original.layers}
        nonzero_now = {layer.name: layer.nonzero for layer in now_snapshot.layers}
        after = np.array([nonzero_now.get(n, 0) / max(1, original_numel[n]) for n in self.names])
        self.original_bars.setOpts(x=x - BAR_WIDTH / 2, height=before)
        self.current_bars.setOpts(x=x + BAR_WIDTH / 2, height=after)
        for label, xi, value in zip(self.labels, x, after):
            label.setText(f"{value:.0%}" if value >= 0.1 or value == 0 else f"{value:.1%}")
            label.setPos(xi + BAR_WIDTH / 2, value + 0.01)
        total = sum(layer.numel for layer in self.original.layers)
        nonzero = sum(layer.nonzero for layer in now_snapshot.layers)
        self.summary.setText(f"Prunable weights: {nonzero:,} of the original {total:,} non-zero "
                             f"({nonzero / max(1, total):.1%} density) across {len(self.names)} "
                             f"parameter(s).")

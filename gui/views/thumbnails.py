"""Every layer's histogram as a small thumbnail, painted by one widget.

The small multiples used to be one pyqtgraph PlotItem per layer (axes, view box, context menu):
ResNet-50's 54 took seconds to build and every live update re-laid out all of them on the GUI
thread, 100-460 ms a time. A thumbnail needs none of that: it is a title, two filled step curves
and the threshold lines, so one ``paintEvent`` draws the cells that are on screen with QPainter,
in a few milliseconds, whatever the layer count.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPalette, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from engine.snapshots import LayerHistogram
from gui.views import ACCENT_COLOR, CURRENT_COLOR, ORIGINAL_COLOR

CELL_MIN_WIDTH = 200
CELL_HEIGHT = 120
TITLE_HEIGHT = 18
MARGIN = 6


class HistogramThumbnails(QWidget):
    """Cells in reading order, one per layer; clicking a cell emits :attr:`clicked` with its
    layer name. Data in: :meth:`set_layers`, then :meth:`set_histograms` for each snapshot."""

    clicked = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.names: list[str] = []
        self.before: dict[str, LayerHistogram] = {}
        self.after: dict[str, LayerHistogram] = {}
        self.nonzero_only = True
        self.threshold: Optional[float] = None
        self.paints = 0   # paint events served (tests check that updates repaint)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    # ------------------------------------------------------------ data in

    def set_layers(self, names: list[str]) -> None:
        self.names = list(names)
        self.before, self.after = {}, {}
        self.updateGeometry()
        self._resize_to_rows()
        self.update()

    def set_histograms(self, before: dict[str, LayerHistogram],
                       after: dict[str, LayerHistogram], nonzero_only: bool) -> None:
        self.before, self.after, self.nonzero_only = before, after, nonzero_only
        self.update()

    def set_threshold(self, value: Optional[float]) -> None:
        self.threshold = value
        self.update()

    # ------------------------------------------------------------ geometry

    def columns(self) -> int:
        return max(1, self.width() // CELL_MIN_WIDTH)

    def rows(self) -> int:
        return max(1, -(-len(self.names) // self.columns()))

    def cell_rect(self, index: int) -> QRect:
        columns = self.columns()
        width = self.width() // columns
        return QRect((index % columns) * width, (index // columns) * CELL_HEIGHT, width,
                     CELL_HEIGHT)

    def name_at(self, x: float, y: float) -> Optional[str]:
        columns = self.columns()
        col, row = int(x // (self.width() // columns)), int(y // CELL_HEIGHT)
        index = row * columns + col
        return self.names[index] if 0 <= col < columns and 0 <= index < len(self.names) else None

    def sizeHint(self) -> QSize:
        return QSize(3 * CELL_MIN_WIDTH, self.rows() * CELL_HEIGHT)

    def _resize_to_rows(self) -> None:
        self.setFixedHeight(self.rows() * CELL_HEIGHT)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.height() != self.rows() * CELL_HEIGHT:
            self._resize_to_rows()

    # ------------------------------------------------------------ input

    def mousePressEvent(self, event) -> None:
        name = self.name_at(event.position().x(), event.position().y())
        if name is not None and event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(name)

    def mouseMoveEvent(self, event) -> None:
        name = self.name_at(event.position().x(), event.position().y())
        self.setToolTip(self.summary(name) if name else "")

    def summary(self, name: str) -> str:
        """What a cell shows, in words (its tooltip)."""
        parts = [name]
        for label, hists in (("original", self.before), ("now", self.after)):
            hist = hists.get(name)
            if hist is not None:
                counts = hist.counts_nonzero if self.nonzero_only else hist.counts
                parts.append(f"{label}: {int(counts.sum()):,} weights drawn"
                             + (f", {hist.nonfinite:,} NaN/inf not drawn" if hist.nonfinite
                                else ""))
        return "\n".join(parts) + "\nClick to draw it large."

    # ------------------------------------------------------------ drawing

    def paintEvent(self, event) -> None:
        self.paints += 1
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        palette = self.palette()
        painter.fillRect(event.rect(), palette.color(QPalette.ColorRole.Base))
        text = palette.color(QPalette.ColorRole.Text)
        grid = QColor(text)
        grid.setAlpha(60)
        exposed = event.rect()
        for index, name in enumerate(self.names):
            cell = self.cell_rect(index)
            if cell.intersects(exposed):
                self._paint_cell(painter, cell.adjusted(MARGIN, MARGIN // 2, -MARGIN, -MARGIN),
                                 name, text, grid)
        painter.end()

    def _paint_cell(self, painter: QPainter, cell: QRect, name: str, text: QColor,
                    grid: QColor) -> None:
        before, after = self.before.get(name), self.after.get(name)
        bad = (after or before).nonfinite if (after or before) is not None else 0
        title = QRect(cell.left(), cell.top(), cell.width(), TITLE_HEIGHT)
        painter.setPen(QColor(*ACCENT_COLOR) if bad else text)
        label = name + (f"  ⚠ {bad:,} NaN/inf" if bad else "")
        painter.drawText(title, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         painter.fontMetrics().elidedText(label, Qt.TextElideMode.ElideMiddle,
                                                          cell.width()))
        area = QRectF(cell.left(), cell.top() + TITLE_HEIGHT, cell.width(),
                      cell.height() - TITLE_HEIGHT)
        painter.setPen(QPen(grid, 1))
        painter.drawRect(area)
        hists = [h for h in (before, after) if h is not None]
        if not hists:
            return
        low = min(float(h.edges[0]) for h in hists)
        high = max(float(h.edges[-1]) for h in hists)
        top = max(float(self._counts(h).max(initial=0)) for h in hists) or 1.0
        span = (high - low) or 1.0
        inner = area.adjusted(1, 3, -1, -1)

        def x_of(value: float) -> float:
            return inner.left() + (value - low) / span * inner.width()

        for hist, color, alpha, width in ((before, ORIGINAL_COLOR, 70, 1.0),
                                          (after, CURRENT_COLOR, 60, 1.5)):
            if hist is None:
                continue
            xs = inner.left() + (hist.edges.astype(np.float64) - low) / span * inner.width()
            ys = inner.bottom() - self._counts(hist).astype(np.float64) / top * inner.height()
            # a step curve: up and across each bin, closed along the baseline
            points = [QPointF(xs[0], inner.bottom())]
            for i, y in enumerate(ys):
                points.append(QPointF(xs[i], y))
                points.append(QPointF(xs[i + 1], y))
            points.append(QPointF(xs[-1], inner.bottom()))
            path = QPainterPath()
            path.addPolygon(QPolygonF(points))
            fill = QColor(*color)
            fill.setAlpha(alpha)
            painter.fillPath(path, fill)
            painter.setPen(QPen(QColor(*color), width))
            painter.drawPolyline(QPolygonF(points))
        if self.threshold is not None:
            painter.setPen(QPen(QColor(*ACCENT_COLOR), 1, Qt.PenStyle.DashLine))
            for value in (-self.threshold, self.threshold):
                if low <= value <= high:
                    x = x_of(value)
                    painter.drawLine(QPointF(x, inner.top()), QPointF(x, inner.bottom()))

    def _counts(self, hist: LayerHistogram) -> np.ndarray:
        return hist.counts_nonzero if self.nonzero_only else hist.counts

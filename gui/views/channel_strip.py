"""A dependency group's output channels as a strip: one row of cells per coupled layer (layers
whose channels go together share a row), one cell per output channel in original index order,
coloured kept / would be removed by the current settings / already removed by an earlier channel
removal. The strip is one painted widget: the cells are a cached image (one pixel column per
cell, widened to whole pixels), and a repaint copies only the exposed part of it, so a group of
thousands of channels draws in a few milliseconds.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from gui.theme import is_dark

KEPT, PLANNED, REMOVED = 0, 1, 2
STATE_NAMES = {KEPT: "kept", PLANNED: "would be removed", REMOVED: "removed already"}
PRUNED_COLOUR = QColor("#c8201e")           # the Masks view's colour for pruned weights
MIN_CELL = 2        # px per channel at least; a wider group scrolls sideways
ROW_HEIGHT = 14
ROW_GAP = 3
TICK_BAND = 16      # index numbers under the cells
MAX_VISIBLE_ROWS = 5
NAME_WIDTH = 190
IMPORTANCE_NAMES = {"l1": "L1", "l2": "L2", "taylor": "Taylor", "bn": "BN scale"}


def strip_colours(palette: QPalette) -> dict[int, QColor]:
    """Cell colours readable on the palette's Base colour (light or dark theme)."""
    if is_dark(palette):
        return {KEPT: QColor(86, 140, 196), PLANNED: QColor(236, 84, 72),
                REMOVED: QColor(150, 150, 150)}
    return {KEPT: QColor(128, 177, 222), PLANNED: QColor(PRUNED_COLOUR),
            REMOVED: QColor(64, 64, 64)}


@dataclass
class StripRow:
    """The output channels of one or more layers that lose the same channels, by original index."""
    layers: list[str]
    states: np.ndarray          # uint8 per original output channel: KEPT, PLANNED or REMOVED

    def indices(self, state: int) -> list[int]:
        return [int(i) for i in np.flatnonzero(self.states == state)]

    @property
    def label(self) -> str:
        return self.layers[0] + (f" +{len(self.layers) - 1}" if len(self.layers) > 1 else "")


def layer_states(width_now: int, planned: list[int], removed_before: list[int]) -> np.ndarray:
    """The states of a layer's original channels: ``removed_before`` are original indices,
    ``planned`` indices of the ``width_now`` channels it has now (the survivors in order)."""
    if removed_before and max(removed_before) >= width_now + len(removed_before):
        removed_before = []   # not this model's history (it cannot be): draw what is known
    states = np.zeros(width_now + len(removed_before), dtype=np.uint8)
    states[list(removed_before)] = REMOVED
    survivors = np.flatnonzero(states == KEPT)
    states[survivors[list(planned)]] = PLANNED
    return states


def strip_rows(plan, removed_channels: dict[str, list[int]]) -> list[StripRow]:
    """The rows for a :class:`engine.structured.preflight.GroupPlan`: every layer whose output
    channels the group removes, in the group's order, layers with the same states sharing a row."""
    rows: list[StripRow] = []
    for layer, side in plan.members:
        if side != "out" or layer not in plan.widths:
            continue
        states = layer_states(plan.widths[layer], plan.remove.get(layer, []),
                              removed_channels.get(layer, []))
        same = next((r for r in rows if np.array_equal(r.states, states)), None)
        if same is None:
            rows.append(StripRow([layer], states))
        else:
            same.layers.append(layer)
    return rows


class ChannelStrip(QWidget):
    """The painted cells. ``hovered`` carries the readout for the cell under the mouse."""
    hovered = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[StripRow] = []
        self._image: Optional[QImage] = None
        self._cell = MIN_CELL
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    # ------------------------------------------------------------ data

    def set_rows(self, rows: list[StripRow]) -> None:
        self.rows = rows
        self.setMinimumWidth(self.channels * MIN_CELL)
        self.setFixedHeight(len(rows) * (ROW_HEIGHT + ROW_GAP) + TICK_BAND)
        self._image = None
        self.update()

    @property
    def channels(self) -> int:
        return max((len(r.states) for r in self.rows), default=0)

    def cells(self, state: int, row: int = 0) -> list[int]:
        """The original channel indices drawn in ``state`` on ``row``."""
        return self.rows[row].indices(state) if row < len(self.rows) else []

    @property
    def cell_width(self) -> int:
        return max(MIN_CELL, self.width() // max(1, self.channels))

    def cell_rect(self, row: int, index: int) -> QRect:
        """Where a cell is drawn (the gap between wide cells excluded)."""
        w = self.cell_width
        return QRect(index * w, row * (ROW_HEIGHT + ROW_GAP), w - (1 if w >= 4 else 0), ROW_HEIGHT)

    def cell_at(self, pos: QPoint) -> Optional[tuple[int, int]]:
        row, within = divmod(pos.y(), ROW_HEIGHT + ROW_GAP)
        index = pos.x() // self.cell_width
        if not (0 <= row < len(self.rows)) or within >= ROW_HEIGHT or pos.x() < 0 \
                or index >= len(self.rows[row].states):
            return None
        return row, index

    def readout(self, pos: QPoint) -> str:
        hit = self.cell_at(pos)
        if hit is None:
            return ""
        row, index = hit
        strip_row = self.rows[row]
        also = (f" (and {len(strip_row.layers) - 1} coupled layer(s) with the same channels)"
                if len(strip_row.layers) > 1 else "")
        return (f"{strip_row.layers[0]}{also}: output channel {index} of "
                f"{len(strip_row.states)} (original numbering), "
                f"{STATE_NAMES[int(strip_row.states[index])]}")

    # ------------------------------------------------------------ drawing

    def _build_image(self) -> QImage:
        """The cells as one image: ``cell_width`` pixel columns per channel, a Base-coloured gap
        column between cells when they are wide enough to show one."""
        colours = strip_colours(self.palette())
        base = self.palette().color(QPalette.ColorRole.Base).rgba()
        lut = np.array([colours[s].rgba() for s in (KEPT, PLANNED, REMOVED)], dtype=np.uint32)
        cell, pitch = self.cell_width, ROW_HEIGHT + ROW_GAP
        width = max(1, self.channels * cell)
        pixels = np.full((max(1, len(self.rows) * pitch), width), base, dtype=np.uint32)
        for r, row in enumerate(self.rows):
            line = np.repeat(lut[row.states], cell)
            if cell >= 4:
                line[cell - 1::cell] = base
            pixels[r * pitch:r * pitch + ROW_HEIGHT, :len(line)] = line
        image = QImage(pixels.data, width, pixels.shape[0], width * 4, QImage.Format.Format_ARGB32)
        return image.copy()   # owns its pixels once ``pixels`` is gone

    def resizeEvent(self, event) -> None:
        self._image = None
        super().resizeEvent(event)

    def changeEvent(self, event) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._image = None
            self.update()
        super().changeEvent(event)

    def paintEvent(self, event) -> None:
        if not self.rows:
            return
        if self._image is None:
            self._image = self._build_image()
        painter = QPainter(self)
        exposed = event.rect().intersected(self._image.rect())
        if not exposed.isEmpty():
            painter.drawImage(exposed, self._image, exposed)
        self._draw_ticks(painter, event.rect())
        painter.end()

    def _draw_ticks(self, painter: QPainter, exposed: QRect) -> None:
        """Channel indices under the cells, a round step apart, in the exposed columns only."""
        cell = self.cell_width
        step = next(s for s in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 1 << 30)
                    if s * cell >= 48)
        top = len(self.rows) * (ROW_HEIGHT + ROW_GAP)
        painter.setPen(self.palette().color(QPalette.ColorRole.Text))
        first = max(0, (exposed.left() - 48) // cell // step * step)
        last = min(self.channels, exposed.right() // cell + 1)
        for index in range(first, last, step):
            x = index * cell
            painter.drawLine(x, top, x, top + 3)
            painter.drawText(QRect(x + 2, top + 1, 46, TICK_BAND - 1),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, str(index))

    # ------------------------------------------------------------ hover

    def mouseMoveEvent(self, event) -> None:
        self.hovered.emit(self.readout(event.position().toPoint()))
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:
        self.hovered.emit("")
        super().leaveEvent(event)


class _RowNames(QWidget):
    """The rows' layer names, level with the cells (they stay put when the cells scroll)."""
    def __init__(self, strip: ChannelStrip) -> None:
        super().__init__()
        self.strip = strip
        self.setFixedWidth(NAME_WIDTH)

    def sizeHint(self) -> QSize:
        return QSize(NAME_WIDTH, self.strip.height())

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        metrics = painter.fontMetrics()
        offset = self.strip.y()   # negative once the rows scroll up
        for r, row in enumerate(self.strip.rows):
            rect = QRect(0, offset + r * (ROW_HEIGHT + ROW_GAP), NAME_WIDTH - 6, ROW_HEIGHT)
            painter.drawText(rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                             metrics.elidedText(row.label, Qt.TextElideMode.ElideLeft, rect.width()))
        painter.end()


class ChannelGroupStrip(QWidget):
    """The strip with its caption, the layer names beside the rows and the hover readout."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.caption = QLabel()
        self.caption.setObjectName("group_caption")
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        self.caption.setWordWrap(True)   # a long layer name must not widen the window
        self.strip = ChannelStrip()
        self.scroll = QScrollArea()
        self.scroll.setWidget(self.strip)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.names = _RowNames(self.strip)
        self.hover = QLabel("Hover a cell for its channel index")
        self.hover.setObjectName("strip_hover")
        # its text changes length as the mouse moves: it must never set the window's width
        self.hover.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        cells = QHBoxLayout()
        cells.setContentsMargins(0, 0, 0, 0)
        cells.addWidget(self.names)
        cells.addWidget(self.scroll, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addLayout(cells)
        layout.addWidget(self.hover)
        self.strip.hovered.connect(self._on_hover)
        self.scroll.verticalScrollBar().valueChanged.connect(self.names.update)
        self._caption_text = ""
        self.hide()

    def set_rows(self, rows: list[StripRow], caption: str) -> None:
        self.strip.set_rows(rows)
        self._caption_text = caption
        self.setVisible(bool(rows))
        self._fit_height()
        self._show_caption()
        self.hover.setText("Hover a cell for its channel index")
        self.names.update()

    def _fit_height(self) -> None:
        """Tall enough for the rows (up to MAX_VISIBLE_ROWS) and, when the cells are wider than
        the view, the horizontal scroll bar."""
        visible = min(len(self.strip.rows), MAX_VISIBLE_ROWS)
        wide = self.strip.channels * MIN_CELL > self.width() - NAME_WIDTH
        bar = self.scroll.horizontalScrollBar().sizeHint().height() if wide else 0
        self.scroll.setFixedHeight(visible * (ROW_HEIGHT + ROW_GAP) + TICK_BAND + bar)
        self.names.setFixedHeight(self.scroll.height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_height()

    def clear(self) -> None:
        self.strip.set_rows([])
        self._caption_text = ""
        self.caption.setText("")
        self.hide()

    def _on_hover(self, text: str) -> None:
        self.hover.setText(text or "Hover a cell for its channel index")

    def _show_caption(self) -> None:
        """The caption and a colour key (rich text, so it follows the palette)."""
        colours = strip_colours(self.palette())
        shown = {s for row in self.strip.rows for s in np.unique(row.states).tolist()}
        key = " ".join(f"<span style='color:{colours[s].name()}'>&#9632;</span> {STATE_NAMES[s]}"
                       for s in (KEPT, PLANNED, REMOVED) if s in shown or s == KEPT)
        self.caption.setText(f"{html.escape(self._caption_text)} &nbsp; {key}")

    def changeEvent(self, event) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._show_caption()
        super().changeEvent(event)


def strip_caption(layer: str, rows: list[StripRow], spec) -> str:
    """'group of layer1.0.conv1: 64 channels, 32 would be removed by L1 at 50%' (plus what an
    earlier removal took), for the row the selected layer is on."""
    row = next((r for r in rows if layer in r.layers), None)
    subject = layer
    if row is None:   # the layer only takes the group's channels as its inputs
        row = rows[0]
        subject = f"{row.layers[0]} (the input channels of {layer})"
    planned, removed = len(row.indices(PLANNED)), len(row.indices(REMOVED))
    how = (f"by {IMPORTANCE_NAMES.get(spec.importance, spec.importance)} at {spec.ratio:.0%}"
           + (" (global ranking)" if spec.scope == "global" else ""))
    text = f"group of {subject}: {len(row.states)} channels"
    if removed:
        text += f", {removed} already removed, {planned} more would be removed {how}"
    else:
        text += f", {planned} would be removed {how}"
    return text

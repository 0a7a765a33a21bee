"""One parameter as an image: weights, |w| or the mask, with zoom, pan, a colour bar and hover.

Conv weights arrive as a grid of kernels (output channels down, input channels across, one blank
pixel between kernels; see engine.snapshots.weight_matrix), so pruned kernels, channels and whole
filters show as blank squares, rows and columns. Pixels stay sharp when zoomed, so N:M patterns
(e.g. two of every four weights along a row) are visible. Beside the picture, the 5x5 top-left corner
of the parameter in the original and in the current model as numbers (as a script would print
``weight[:5, :5]`` before and after pruning), with the weights pruned since in red.
"""
from __future__ import annotations

import re
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (QCheckBox, QComboBox, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QVBoxLayout, QWidget)

from engine.snapshots import format_matrix
from gui.combo import compact, fit_popup
from gui.views.channel_strip import ChannelGroupStrip
from gui.views import shape_text
from gui.worker import MatrixData

PRUNED_COLOUR = "#c8201e"
_NUMBER = re.compile(r"[ -]?(?:\d+\.?\d*|nan|inf)")   # one cell of format_matrix's rows

SHOW = {"Weights": "weight", "Mask": "mask", "|w|": "abs"}
# an LSTM's weight_ih/weight_hh stack its four gates' rows in this order (torch.nn.LSTM)
LSTM_GATES = ("i", "f", "g", "o")
LSTM_GATE_NAMES = {"i": "input", "f": "forget", "g": "cell", "o": "output"}


def row_blocks(name: str, shape: tuple[int, ...]) -> Optional[list[tuple[int, str]]]:
    """(first row, label) of the row blocks a parameter is made of: an LSTM's gates; None when
    its rows are not blocks."""
    leaf = name.rsplit(".", 1)[-1]
    if len(shape) == 2 and leaf.startswith(("weight_ih", "weight_hh")) and shape[0] % 4 == 0:
        hidden = shape[0] // 4
        return [(k * hidden, gate) for k, gate in enumerate(LSTM_GATES)]
    return None


def is_embedding(name: str, shape: tuple[int, ...]) -> bool:
    return len(shape) == 2 and "embed" in name.rsplit(".", 1)[0].lower()
COLORMAPS = {"weight": "CET-D1", "abs": "viridis", "mask": None}


def grid_index(shape: tuple[int, ...], row: int, col: int) -> Optional[tuple[int, ...]]:
    """The parameter index under a pixel of the kernel-grid picture; None on a gap pixel."""
    if len(shape) == 2:
        return (row, col)
    if len(shape) == 3:  # conv1d: out x (in * k)
        k = shape[2]
        return (row, col // k, col % k)
    kh = shape[2]
    kw = int(np.prod(shape[3:]))
    out, ky = divmod(row, kh + 1)
    cin, kx = divmod(col, kw + 1)
    if ky == kh or kx == kw:
        return None
    return (out, cin, ky, kx)


class MaskView(QWidget):
    request = Signal(str, str)  # parameter name, what (weight/abs/mask)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.data: Optional[MatrixData] = None
        self.param = QComboBox()
        self.param.setToolTip("The parameter to draw. Conv weights are drawn as a grid of kernels.")
        compact(self.param, 18)
        self.show = QComboBox()
        self.show.addItems(list(SHOW))
        self.show.setToolTip("Weights: signed values (blue negative, red positive, white zero). "
                             "Mask: black = pruned, white = kept. |w|: magnitude, what L1 ranks.")
        fit = QPushButton("Fit")
        fit.setToolTip("Zoom to the whole parameter (scroll to zoom, drag to pan)")
        # on its own row under the picture: its text changes length as the mouse moves, and in
        # the top row it set a wide minimum for the whole window
        self.hover = QLabel("Hover a pixel for its index and value")
        # the selected layer's channel group and the channels it would lose (gui.window.foresight):
        # as a strip of cells, and as text with the index ranges to copy
        self.group_strip = ChannelGroupStrip()
        self.group_note = QLabel()
        self.group_note.setObjectName("group_note")
        self.group_note.setWordWrap(True)
        self.group_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.corner_toggle = QCheckBox("Corner before / after")
        self.corner_toggle.setChecked(True)
        self.corner_toggle.setToolTip("The 5×5 top-left corner of the parameter as numbers, in the "
                                      "original and in the current model (mask applied)")
        top = QHBoxLayout()
        top.addWidget(QLabel("Parameter:"))
        top.addWidget(self.param, 1)   # long names (BERT's) get all the width there is
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.show)
        top.addWidget(fit)

        self.plot = pg.PlotWidget()
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        self.plot.showGrid(False, False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.block_items: list = []   # gate labels and the lines between gate blocks
        self.colorbar = pg.ColorBarItem(values=(-1, 1), colorMap=pg.colormap.get("CET-D1"),
                                        interactive=False, width=14)
        self.colorbar.setImageItem(self.image, insert_in=self.plot.getPlotItem())
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.corner_before = self._corner_label()
        self.corner_after = self._corner_label()
        self.corner_note = QLabel()
        self.corner_note.setWordWrap(True)
        self.corner_box = QGroupBox("5×5 corner")
        corner_layout = QVBoxLayout(self.corner_box)
        corner_layout.addWidget(QLabel("Before (original):"))
        corner_layout.addWidget(self.corner_before)
        corner_layout.addWidget(QLabel("After (current model):"))
        corner_layout.addWidget(self.corner_after)
        corner_layout.addWidget(self.corner_note)
        corner_layout.addStretch(1)
        self.corner_values: Optional[tuple[np.ndarray, np.ndarray]] = None
        middle = QHBoxLayout()
        middle.addWidget(self.plot, 1)
        middle.addWidget(self.corner_box)
        bottom = QHBoxLayout()
        bottom.addWidget(self.legend, 1)
        bottom.addWidget(self.corner_toggle)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(middle, 1)
        layout.addWidget(self.hover)
        layout.addWidget(self.group_strip)
        layout.addWidget(self.group_note)
        layout.addLayout(bottom)
        self.corner_toggle.toggled.connect(self.corner_box.setVisible)

        self._mouse = pg.SignalProxy(self.plot.scene().sigMouseMoved, rateLimit=30,
                                     slot=self._on_mouse)
        self.param.currentTextChanged.connect(self._ask)
        self.param.currentTextChanged.connect(self.param.setToolTip)   # the whole name on hover
        self.show.currentTextChanged.connect(self._ask)
        fit.clicked.connect(self.fit)

    @staticmethod
    def _corner_label() -> QLabel:
        label = QLabel()
        label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return label

    @property
    def what(self) -> str:
        return SHOW[self.show.currentText()]

    def clear(self) -> None:
        """Nothing drawn: a new model's parameter must not show the previous model's matrix."""
        self.data = None
        self.image.clear()
        for item in self.block_items:
            self.plot.removeItem(item)
        self.block_items = []
        self.legend.setText("")
        self.hover.setText("Hover a pixel for its index and value")
        self.group_strip.clear()
        self.group_note.setText("")
        self._show_corner(MatrixData("", "weight", (), np.zeros((0, 0), dtype=np.float32),
                                     None, None))

    def set_parameters(self, names: list[str]) -> None:
        self.clear()
        current = self.param.currentText()
        self.param.blockSignals(True)
        self.param.clear()
        self.param.addItems(names)
        fit_popup(self.param)
        if current in names:
            self.param.setCurrentText(current)
        self.param.blockSignals(False)
        self._ask()

    def select(self, name: str) -> None:
        if self.param.findText(name) >= 0:
            self.param.setCurrentText(name)

    def refresh(self) -> None:
        """Asks for the current parameter's matrix again."""
        self._ask()

    def _ask(self, *_: object) -> None:
        if self.param.currentText():
            self.request.emit(self.param.currentText(), self.what)

    def set_matrix(self, data: MatrixData) -> None:
        if data.name != self.param.currentText() or data.what != self.what:
            return  # an answer to an older request
        first = self.data is None or self.data.name != data.name or self.data.image.shape != data.image.shape
        self.data = data
        image = data.image
        finite = image[np.isfinite(image)]
        if data.what == "mask":
            cmap, levels = pg.ColorMap([0.0, 1.0], [(0, 0, 0), (255, 255, 255)]), (0.0, 1.0)
        elif data.what == "abs":
            top = float(finite.max()) if finite.size else 1.0
            cmap, levels = pg.colormap.get("viridis"), (0.0, top or 1.0)
        else:
            top = float(np.abs(finite).max()) if finite.size else 1.0
            cmap, levels = pg.colormap.get("CET-D1"), (-(top or 1.0), top or 1.0)
        self.colorbar.setColorMap(cmap)
        self.colorbar.setLevels(levels)
        self.image.setImage(image, levels=levels, autoLevels=False)
        if first:
            self.fit()
        self._describe(data)
        self._show_corner(data)

    def _show_corner(self, data: MatrixData) -> None:
        if data.corner_before is None or data.corner_after is None:
            self.corner_values = None
            for label in (self.corner_before, self.corner_after):
                label.setText("")
            self.corner_note.setText("")
            return
        before, after = data.corner_before, data.corner_after
        self.corner_values = (before, after)
        reshaped = data.original_shape is not None and data.original_shape != data.shape
        pruned = np.zeros(after.shape, dtype=bool)
        if before.shape == after.shape and not reshaped:   # same positions, same weights
            pruned = (after == 0) & (before != 0)
        self.corner_before.setText(_matrix_html(before, np.zeros(before.shape, dtype=bool)))
        self.corner_after.setText(_matrix_html(after, pruned))
        zeros = int((after == 0).sum())
        self.corner_note.setText(
            f"{zeros} of {after.size} zero now"
            + (f"; {int(pruned.sum())} pruned since the original (red)"
               if pruned.any() else "")
            + (f". Channel removal changed the shape {shape_text(data.original_shape)} → "
               f"{shape_text(data.shape)}: the rows and columns after are the channels kept, not the "
               f"same ones as before" if reshaped else ""))

    def corner_text(self) -> tuple[str, str]:
        """The corner before and after as plain rows of numbers (engine.snapshots.format_matrix)."""
        if self.corner_values is None:
            return "", ""
        return format_matrix(self.corner_values[0]), format_matrix(self.corner_values[1])

    def fit(self) -> None:
        if self.data is not None:
            h, w = self.data.image.shape
            self.plot.getPlotItem().getViewBox().setRange(xRange=(0, w), yRange=(0, h), padding=0.02)

    def _label_blocks(self, data: MatrixData) -> list[str]:
        """Labels an LSTM's gate blocks (a line between blocks, the gate's letter beside each);
        returns the labels drawn."""
        for item in self.block_items:
            self.plot.removeItem(item)
        self.block_items = []
        blocks = row_blocks(data.name, data.shape) or []
        for first, gate in blocks:
            if first:
                line = pg.InfiniteLine(pos=first, angle=0, movable=False,
                                       pen=pg.mkPen((214, 39, 40), width=1))
                self.plot.addItem(line)
                self.block_items.append(line)
            text = pg.TextItem(gate, color=(214, 39, 40), anchor=(1.1, 0.0))
            text.setPos(0, first)
            self.plot.addItem(text)
            self.block_items.append(text)
        return [gate for _, gate in blocks]

    def block_labels(self) -> list[str]:
        return [item.toPlainText() for item in self.block_items if isinstance(item, pg.TextItem)]

    def _describe(self, data: MatrixData) -> None:
        shape = data.shape
        gates = self._label_blocks(data)
        if gates:
            hidden = shape[0] // 4
            self.plot.setLabel("left", f"gate rows: {', '.join(f'{g} = {LSTM_GATE_NAMES[g]}' for g in gates)}"
                                       f" ({hidden} hidden units each)")
            self.plot.setLabel("bottom", "input (column)" if "ih" in data.name.rsplit(".", 1)[-1]
                               else "hidden state (column)")
            text = (f"{data.name} {shape}: the four gates' weights stacked, {hidden} rows each, "
                    f"in torch's order i (input), f (forget), g (cell), o (output).")
        elif is_embedding(data.name, shape):
            self.plot.setLabel("left", f"token id (one row per vocabulary entry, {shape[0]:,})")
            self.plot.setLabel("bottom", f"embedding dimension ({shape[1]})")
            text = (f"{data.name} {shape}: one row per token of the vocabulary; a pruned row "
                    f"is a word whose vector is gone.")
        elif len(shape) >= 4:
            self.plot.setLabel("left", f"output channel (filter) × kernel row — {shape[0]} filters")
            self.plot.setLabel("bottom", f"input channel × kernel column — {shape[1]} channels")
            text = (f"{data.name} {shape}: {shape[0]} × {shape[1]} kernels of "
                    f"{shape[2]}×{int(np.prod(shape[3:]))}, one blank pixel between kernels. A "
                    f"pruned kernel is a blank square, a pruned input channel a blank column of "
                    f"kernels, a pruned filter a blank row.")
        else:
            self.plot.setLabel("left", "output (row)")
            self.plot.setLabel("bottom", "input (column)")
            text = f"{data.name} {shape}: rows are outputs, columns inputs. Zoom in to see N:M patterns."
        density = float(np.count_nonzero(np.nan_to_num(data.image)) /
                        max(1, np.isfinite(data.image).sum()))
        self.legend.setText(text + (f" Shown: {density:.1%} non-zero." if data.what != "mask" else
                                    f" Kept: {density:.1%}."))

    def _on_mouse(self, event) -> None:
        if self.data is None:
            return
        pos = event[0]
        if not self.plot.sceneBoundingRect().contains(pos):
            return
        point = self.plot.getPlotItem().getViewBox().mapSceneToView(pos)
        row, col = int(np.floor(point.y())), int(np.floor(point.x()))
        h, w = self.data.image.shape
        if not (0 <= row < h and 0 <= col < w):
            self.hover.setText("")
            return
        index = grid_index(self.data.shape, row, col)
        if index is None:
            self.hover.setText("(gap between kernels)")
            return
        value = float(self.data.image[row, col])
        self.hover.setText(f"{self.data.name}[{', '.join(map(str, index))}] = {value:.5g}")


def _matrix_html(values: np.ndarray, highlight: np.ndarray) -> str:
    """format_matrix's text with the highlighted entries in red (whitespace kept in <pre>)."""
    out = []
    for r, row in enumerate(format_matrix(values).splitlines()):
        cells = iter(highlight[r])
        out.append(_NUMBER.sub(lambda m: f'<span style="color:{PRUNED_COLOUR}">{m.group(0)}</span>'
                               if next(cells) else m.group(0), row))
    return "<pre style='margin:0'>" + "\n".join(out) + "</pre>"


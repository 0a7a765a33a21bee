"""Live fine-tuning curves: loss per batch, validation and test accuracy per epoch (validation picks
the kept epoch; test is only reported), and, while a pruning schedule
runs, the sparsity of the selected weights per step (under the loss, on the same step axis)."""
from __future__ import annotations

from typing import Optional

import pyqtgraph as pg
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from engine.finetune import EpochResult
from gui.views import ACCENT_COLOR, CURRENT_COLOR, ORIGINAL_COLOR
from gui.worker import SparsityPoints, StepLosses


class TrainingView(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.epochs: list[EpochResult] = []
        self.epoch_end_steps: list[int] = []
        self.sparsity_steps: list[int] = []
        self.sparsities: list[float] = []
        self.status = QLabel("Fine-tune to see the loss and accuracy curves here.")
        self.status.setWordWrap(True)   # an epoch summary wraps rather than widening the window

        self.loss_plot = pg.PlotWidget(title="Training loss")
        self.loss_plot.setLabel("bottom", "batch")
        self.loss_plot.setLabel("left", "cross-entropy")
        self.loss_plot.getAxis("left").enableAutoSIPrefix(False)   # 0.05, not "50 (x0.001)"
        self.loss_plot.showGrid(x=True, y=True, alpha=0.2)
        self.loss_plot.addLegend(offset=(-10, 10))
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen(CURRENT_COLOR, width=1), name="batch loss")
        self.epoch_loss_curve = self.loss_plot.plot(pen=None, symbol="o", symbolBrush=ACCENT_COLOR,
                                                    symbolSize=9, name="epoch mean")

        self.acc_plot = pg.PlotWidget(title="Accuracy per epoch")
        self.acc_plot.setLabel("bottom", "epoch")
        self.acc_plot.setLabel("left", "accuracy", units="%")
        self.acc_plot.showGrid(x=True, y=True, alpha=0.2)
        self.acc_plot.addLegend(offset=(-10, 40), brush=pg.mkBrush(255, 255, 255, 220))
        self.acc_curve = self.acc_plot.plot(pen=pg.mkPen(CURRENT_COLOR, width=2), symbol="o",
                                            symbolBrush=CURRENT_COLOR, name="test")
        self.val_curve = self.acc_plot.plot(pen=pg.mkPen(ACCENT_COLOR, width=1.5,
                                                         style=pg.QtCore.Qt.PenStyle.DashLine),
                                            symbol="t", symbolSize=11, symbolBrush=ACCENT_COLOR,
                                            name="validation")
        self.acc_plot.setToolTip("Validation accuracy (held out of the training data) picks the "
                                 "epoch that is kept; test accuracy is only reported.")
        self.start_accuracy: Optional[float] = None  # drawn at epoch 0
        self.original_line = pg.InfiniteLine(angle=0, movable=False,
                                             pen=pg.mkPen(ORIGINAL_COLOR, width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine),
                                             label="original {value:.2f}%",
                                             labelOpts={"position": 0.05, "color": (90, 90, 90),
                                                        "anchors": [(0, 0), (0, 1)]})
        self.start_line = pg.InfiniteLine(angle=0, movable=False,
                                          pen=pg.mkPen(ACCENT_COLOR, width=1.5, style=pg.QtCore.Qt.PenStyle.DotLine),
                                          label="before fine-tuning {value:.2f}%",
                                          labelOpts={"position": 0.95, "color": ACCENT_COLOR,
                                                     "anchors": [(1, 0), (1, 1)]})
        self.original_line.hide()
        self.start_line.hide()
        self.acc_plot.addItem(self.original_line)
        self.acc_plot.addItem(self.start_line)

        self.sparsity_plot = pg.PlotWidget(title="Sparsity of the selected weights (schedule)")
        self.sparsity_plot.setLabel("bottom", "batch")
        self.sparsity_plot.setLabel("left", "sparsity", units="%")
        self.sparsity_plot.showGrid(x=True, y=True, alpha=0.2)
        self.sparsity_plot.setXLink(self.loss_plot)   # one step axis: pruning events under the loss
        self.sparsity_curve = self.sparsity_plot.plot(pen=pg.mkPen(ACCENT_COLOR, width=2),
                                                      symbol="o", symbolSize=5,
                                                      symbolBrush=ACCENT_COLOR, name="sparsity")
        self.sparsity_plot.hide()

        left = QVBoxLayout()
        left.addWidget(self.loss_plot, 3)
        left.addWidget(self.sparsity_plot, 2)
        plots = QHBoxLayout()
        plots.addLayout(left)
        plots.addWidget(self.acc_plot)
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addLayout(plots)

    def start(self, epochs: int, original_accuracy: Optional[float],
              current_accuracy: Optional[float]) -> None:
        """A new fine-tuning run: clears the curves and marks where accuracy stood."""
        self.steps, self.losses, self.epochs, self.epoch_end_steps = [], [], [], []
        self.sparsity_steps, self.sparsities = [], []
        self.sparsity_curve.setData([], [])
        self.sparsity_plot.hide()   # shown again when a schedule reports sparsity
        self.start_accuracy = current_accuracy
        self._draw()
        same = (original_accuracy is not None and current_accuracy is not None
                and abs(original_accuracy - current_accuracy) < 1e-9)
        if same:   # one line, one label: two labels at one height would print over each other
            current_accuracy = None
        self.original_line.label.format = ("original = start {value:.2f}%" if same
                                           else "original {value:.2f}%")
        for line, value in ((self.original_line, original_accuracy),
                            (self.start_line, current_accuracy)):
            line.setVisible(value is not None)
            if value is not None:
                line.setValue(value * 100)
                line.label.valueChanged()   # redraw the text even when the value is unchanged
        self.acc_plot.setXRange(-0.3, max(1, epochs) + 0.3)
        # whole epochs only: a 0.5 tick means nothing (many epochs: pyqtgraph's own spacing)
        axis = self.acc_plot.getAxis("bottom")
        if epochs <= 20:
            axis.setTickSpacing(1, 1)
        else:
            axis.setTickSpacing()
        self.status.setText(f"Fine-tuning for {epochs} epoch(s)…")

    def reset(self, note: str) -> None:
        """Revert or a new model: the curves and the accuracy baseline described another model."""
        self.start(0, None, None)
        self.status.setText(note)

    def add_steps(self, chunk: StepLosses) -> None:
        self.steps.extend(chunk.steps)
        self.losses.extend(chunk.losses)
        self.loss_curve.setData(self.steps, self.losses)

    def add_sparsity(self, chunk: SparsityPoints) -> None:
        """Points of a running schedule: (step, fraction of the selected weights that are zero)."""
        self.sparsity_steps.extend(chunk.steps)
        self.sparsities.extend(chunk.sparsities)
        self.sparsity_curve.setData(self.sparsity_steps, [s * 100 for s in self.sparsities])
        self.sparsity_plot.show()

    def mark_stopped(self) -> None:
        """Stop restores the epoch engine.finetune kept (the best on validation, or the last when
        nothing was held out), or the weights from before fine-tuning when no epoch finished: the
        curves stay, the text says so."""
        if not self.epochs:
            kept = "the weights from before fine-tuning (no epoch had finished)"
        elif self.epochs[-1].val is None:
            kept = "the last finished epoch (no validation split to choose on)"
        else:
            kept = "the epoch with the best validation accuracy so far"
        self.status.setText(f"{self.status.text()} — stopped: the model keeps {kept}; press "
                            f"Measure to compare it.")

    def add_epoch(self, result: EpochResult) -> None:
        self.epochs.append(result)
        self.epoch_end_steps.append(self.steps[-1] if self.steps else 0)
        self._draw()
        val = (f"validation accuracy {result.val.accuracy:.2%}, " if result.val is not None
               else "")
        self.status.setText(f"Epoch {result.epoch}: train loss {result.train_loss:.4f}, {val}test "
                            f"accuracy {result.test.accuracy:.2%}, macro F1 {result.test.f1:.3f} "
                            f"({result.seconds:.1f} s)")

    def _draw(self) -> None:
        self.loss_curve.setData(self.steps, self.losses)
        self.epoch_loss_curve.setData(self.epoch_end_steps, [e.train_loss for e in self.epochs])
        xs = [e.epoch for e in self.epochs]
        ys = [e.test.accuracy * 100 for e in self.epochs]
        if self.start_accuracy is not None:  # epoch 0: where fine-tuning started
            xs, ys = [0] + xs, [self.start_accuracy * 100] + ys
        self.acc_curve.setData(xs, ys)
        validated = [e for e in self.epochs if e.val is not None]
        self.val_curve.setData([e.epoch for e in validated],
                               [e.val.accuracy * 100 for e in validated])

"""The comparison table (Original / Pruned / ratio) of the latest run, its honest reading, and the
run history: every finished run stays as a row. Beside them, once there is something to show: the
layer widths before and after channel removal, and the report of a 2:4 sparse-kernel run. Copy and
Save CSV carry the tables."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from engine.io import atomic_write_text
from engine.metrics import NO_DATA, ModelMetrics, cell_text, format_ratio, format_value
from engine.structured.semistructured import SemiStructuredReport
from engine.structured.shapes import LayerWidth
from gui.worker import MetricsReport

COMPARE_COLUMNS = ("Metric", "Original", "Pruned", "Ratio", "Note")
# (header, ModelMetrics attribute or callable, unit)
HISTORY_COLUMNS = (
    ("Accuracy", lambda m: None if m.accuracy is None else m.accuracy * 100, "%"),
    ("F1", lambda m: None if m.f1 is None else m.f1 * 100, "%"),
    ("Params", lambda m: m.params, ""),
    ("Non-zero", lambda m: m.nonzero_params, ""),
    ("Sparsity", lambda m: m.sparsity * 100, "%"),
    ("Size dense", lambda m: m.dense_bytes, "bytes"),
    ("Size sparse", lambda m: m.sparse_bytes, "bytes"),
    ("MACs", lambda m: m.macs, ""),
    ("Eff. MACs", lambda m: m.effective_macs, ""),
    ("Latency", lambda m: m.latency_ms, "ms"),
)
LABELLED_HISTORY_COLUMNS = 2   # the first columns need labels: "no data" in no-data mode
WIDTH_COLUMNS = ("Layer", "Type", "In", "Out", "Out kept")
WIDTHS_MAX_HEIGHT = 480
DETAILS_MIN_WIDTH = 300   # room for the 2:4 report's lines
GOOD = QColor(35, 134, 54)
BAD = QColor(190, 30, 30)
STALE = QColor(160, 160, 160)   # figures of a model that is no longer the current one


def _arrow(before: int, after: int) -> str:
    return str(before) if before == after else f"{before} → {after}"


def _item(text: str, align_right: bool = True) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class CompareView(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.reports: list[MetricsReport] = []
        self.original: Optional[ModelMetrics] = None

        self.title = QLabel("Prune or press Measure to compare the model with the original.")
        self.title.setStyleSheet("font-weight: bold")
        self.table = QTableWidget(0, len(COMPARE_COLUMNS))
        self.table.setHorizontalHeaderLabels(COMPARE_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # sized to its rows (add_report) and its Note column stretches: scroll bars would only
        # eat the last row
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setWordWrap(False)   # one line per metric; a long note elides (whole in its tooltip)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.horizontalHeader()
        for i in range(4):
            header.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.history = QTableWidget(0, 1 + len(HISTORY_COLUMNS))
        self.history.setHorizontalHeaderLabels(["Run"] + [c[0] for c in HISTORY_COLUMNS])
        self.history.verticalHeader().setVisible(False)
        self.history.verticalHeader().setDefaultSectionSize(24)
        self.history.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.history.horizontalHeader().setStretchLastSection(True)

        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the comparison table and the run history (tab-separated, "
                                    "pastes into a spreadsheet)")
        self.save_button = QPushButton("Save CSV…")
        self.save_button.setToolTip("Save the comparison table and the run history as CSV")
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel("Run history (every finished run):"))
        buttons.addStretch(1)
        self.explain_button = QPushButton("Why is it not faster?")
        self.explain_button.setToolTip(
            "Measure the current model against the original over batch sizes 1-64 in NCHW and "
            "channels-last, show how the pruned weights are stored, whether sparse kernels exist "
            "here, and a verdict with the numbers")
        buttons.addWidget(self.explain_button)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.save_button)

        self.widths_title = QLabel()
        self.widths_title.setStyleSheet("font-weight: bold")
        self.widths_title.setWordWrap(True)
        self.widths = QTableWidget(0, len(WIDTH_COLUMNS))
        self.widths.setHorizontalHeaderLabels(WIDTH_COLUMNS)
        self.widths.verticalHeader().setVisible(False)
        self.widths.verticalHeader().setDefaultSectionSize(24)
        self.widths.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.widths.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.widths.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.widths.setToolTip("Input and output width (channels or features) of every layer channel "
                               "removal changed: original → now")
        self.semi_title = QLabel("2:4 sparse kernels (GPU)")
        self.semi_title.setStyleSheet("font-weight: bold")
        self.semi = QLabel()
        self.semi.setWordWrap(True)
        self.semi.setMinimumWidth(DETAILS_MIN_WIDTH - 20)
        self.semi.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.verify_title = QLabel("Export verified (each file loaded in a fresh process)")
        self.verify_title.setStyleSheet("font-weight: bold")
        self.verify_title.setWordWrap(True)
        self.verify = QLabel()
        self.verify.setWordWrap(True)
        self.verify.setMinimumWidth(DETAILS_MIN_WIDTH - 20)
        self.verify.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.verify_lines: list[str] = []
        self.layer_widths: list[LayerWidth] = []
        self.semi_report: Optional[SemiStructuredReport] = None
        details = QWidget()
        details_layout = QVBoxLayout(details)
        details_layout.setContentsMargins(0, 0, 0, 0)
        details_layout.addWidget(self.widths_title)
        details_layout.addWidget(self.widths)
        details_layout.addWidget(self.semi_title)
        details_layout.addWidget(self.semi)
        details_layout.addWidget(self.verify_title)
        details_layout.addWidget(self.verify)
        details_layout.addStretch(1)
        self.details = details
        main = QWidget()
        main_layout = QVBoxLayout(main)
        main_layout.setContentsMargins(0, 0, 0, 0)
        main_layout.addWidget(self.title)
        main_layout.addWidget(self.table)
        main_layout.addWidget(self.summary)
        main_layout.addStretch(1)
        top = QWidget()
        top_layout = QHBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(main, 1)
        top_layout.addWidget(details, 0)
        self._show_details()
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addLayout(buttons)
        bottom_layout.addWidget(self.history)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(bottom)
        splitter.setSizes([520, 280])
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        self.copy_button.clicked.connect(self.copy_to_clipboard)

    # ------------------------------------------------------------ data in

    def add_report(self, report: MetricsReport) -> None:
        self.reports.append(report)
        self.original = report.original
        self.title.setText(f"Latest run: {report.record.label}")
        self._fill_table(report.table)
        self.summary.setText(" ".join(report.summary))
        self._fill_history()

    def show_partial(self, rows: list) -> None:
        """The figures measured so far (parameters and size first, then MACs, then accuracy),
        while the rest are still being measured; the finished report replaces them."""
        self.title.setText("Measuring… the table fills in as each figure is measured")
        self._fill_table(rows)
        self.summary.setText("")

    def _fill_table(self, table: list) -> None:
        self.table.setRowCount(len(table))
        for row, r in enumerate(table):
            self.table.setItem(row, 0, _item(r.metric, align_right=False))
            self.table.setItem(row, 1, _item(cell_text(r, r.original)))
            self.table.setItem(row, 2, _item(cell_text(r, r.pruned)))
            ratio = _item(format_ratio(r.ratio))
            # timings jitter by several percent between runs: colour only a clear change
            noise = 0.1 if r.unit in ("ms", "samples/s") else 0.005
            if r.ratio is not None and abs(r.ratio - 1.0) > noise:
                ratio.setForeground(GOOD if r.ratio > 1.0 else BAD)
            self.table.setItem(row, 3, ratio)
            note = _item(r.note, align_right=False)
            note.setToolTip(r.note)
            self.table.setItem(row, 4, note)
        # the table takes the height of its rows; the history gets the rest
        self.table.resizeRowsToContents()
        height = (self.table.horizontalHeader().sizeHint().height()
                  + self.table.verticalHeader().length() + 2 * self.table.frameWidth())
        self.table.setMinimumHeight(height)
        self.table.setMaximumHeight(height)

    def mark_stale(self, message: str) -> None:
        """The model changed without a measurement (Revert): says so over the table, and greys the
        latest run's figures out; the run history stays, as it describes finished runs."""
        if not self.reports:
            return
        self.title.setText(message)
        for row in range(self.table.rowCount()):
            for col in range(self.table.columnCount()):
                item = self.table.item(row, col)
                if item is not None:
                    item.setForeground(STALE)

    def clear(self) -> None:
        self.reports = []
        self.original = None
        self.table.setRowCount(0)
        self.history.setRowCount(0)
        self.summary.setText("")
        self.set_layer_widths([])
        self.set_semi_structured(None)
        self.set_verification([], True)

    def set_layer_widths(self, widths: list[LayerWidth]) -> None:
        """Shows the layers whose width changed (channel removal); hidden when none did."""
        changed = [w for w in widths if w.changed]
        self.layer_widths = changed
        self.widths.setRowCount(len(changed))
        for row, w in enumerate(changed):
            self.widths.setItem(row, 0, _item(w.name, align_right=False))
            self.widths.setItem(row, 1, _item(w.kind, align_right=False))
            self.widths.setItem(row, 2, _item(_arrow(w.in_before, w.in_after)))
            self.widths.setItem(row, 3, _item(_arrow(w.out_before, w.out_after)))
            self.widths.setItem(row, 4, _item(f"{w.out_kept:.0%}"))
        self.widths_title.setText(f"Layer widths (original → now): {len(changed)} of "
                                  f"{len(widths)} changed")
        # as wide as its columns and as tall as its rows (a long list scrolls), so the comparison
        # table keeps the room for its notes
        self.widths.resizeColumnsToContents()
        frame = 2 * self.widths.frameWidth() + 4
        height = self.widths.horizontalHeader().sizeHint().height() + 24 * len(changed) + frame
        self.widths.setFixedHeight(min(WIDTHS_MAX_HEIGHT, height))
        width = self.widths.horizontalHeader().length() + frame + (
            self.widths.verticalScrollBar().sizeHint().width() if height > WIDTHS_MAX_HEIGHT else 0)
        self.widths.setFixedWidth(width)
        self.details.setFixedWidth(max(DETAILS_MIN_WIDTH, width))
        self._show_details()

    def set_semi_structured(self, report: Optional[SemiStructuredReport]) -> None:
        self.semi_report = report
        if report is not None:
            converted = [l for l in report.layers if l.converted]
            speed = (f"{report.dense_ms:.3f} ms dense, {report.sparse_ms:.3f} ms sparse: "
                     f"{report.speedup:.2f}× speedup" if report.speedup else "not timed")
            self.semi.setText(
                f"{report.device}, {report.dtype}, batch {report.batch_size}: "
                f"{len(converted)} of {len(report.layers)} Linear layers converted. Outputs "
                f"{'match' if report.outputs_match else 'DIFFER'} (max |diff| "
                f"{report.max_abs_diff:.2e}, tolerance {report.tolerance:.2e}). {speed}.")
        self._show_details()

    def set_verification(self, lines: list[str], ok: bool) -> None:
        """The last export's verification, one line per written file."""
        self.verify_lines = list(lines)
        self.verify_title.setText("Export verified (each file loaded in a fresh process)" if ok
                                  else "Export does NOT verify")
        self.verify.setText("\n".join(lines))
        self._show_details()

    def _show_details(self) -> None:
        for widget in (self.widths_title, self.widths):
            widget.setVisible(bool(self.layer_widths))
        for widget in (self.semi_title, self.semi):
            widget.setVisible(self.semi_report is not None)
        for widget in (self.verify_title, self.verify):
            widget.setVisible(bool(self.verify_lines))
        self.details.setVisible(bool(self.layer_widths) or self.semi_report is not None
                                or bool(self.verify_lines))

    def _fill_history(self) -> None:
        rows = [("Original", self.original)] + [(r.record.label, r.current) for r in self.reports]
        self.history.setRowCount(len(rows))
        for i, (label, metrics) in enumerate(rows):
            self.history.setItem(i, 0, _item(label, align_right=False))
            for j, (_, getter, unit) in enumerate(HISTORY_COLUMNS, start=1):
                value = getter(metrics)
                unmeasured = value is None and metrics is not None and not metrics.labelled \
                    and j <= LABELLED_HISTORY_COLUMNS
                self.history.setItem(i, j, _item(NO_DATA if unmeasured else format_value(value, unit)))

    # ------------------------------------------------------------ data out

    def rows(self) -> list[list[str]]:
        """Both tables as text rows: the comparison of the latest run, a blank row, the history."""
        out = [list(COMPARE_COLUMNS)]
        for row in range(self.table.rowCount()):
            out.append([self.table.item(row, c).text() for c in range(len(COMPARE_COLUMNS))])
        out.append([])
        out.append(["Run"] + [c[0] for c in HISTORY_COLUMNS])
        for row in range(self.history.rowCount()):
            out.append([self.history.item(row, c).text() for c in range(self.history.columnCount())])
        if self.layer_widths:
            out.append([])
            out.append(["Layer", "Type", "In before", "In after", "Out before", "Out after"])
            out.extend([w.name, w.kind, str(w.in_before), str(w.in_after), str(w.out_before),
                        str(w.out_after)] for w in self.layer_widths)
        return out

    def to_text(self, delimiter: str) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(self.rows())
        return buffer.getvalue()

    def copy_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(self.to_text("\t"))

    def save_csv(self, path: str | Path) -> None:
        atomic_write_text(Path(path), self.to_text(","))

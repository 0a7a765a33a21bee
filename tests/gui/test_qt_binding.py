"""The Qt binding must not leak references to None: PySide6 6.12.0 dropped one on every void call,
and on Python 3.11 a long session (or this test suite) then aborted at exit with none_dealloc."""
import gc
import sys

from PySide6.QtWidgets import QLabel, QProgressBar


def test_void_qt_calls_keep_none_refcount(qtbot):
    label, bar = QLabel(), QProgressBar()
    qtbot.addWidget(label)
    qtbot.addWidget(bar)
    gc.collect()
    before = sys.getrefcount(None)
    for _ in range(1000):
        label.setText("x")
        bar.setValue(1)
    gc.collect()
    assert sys.getrefcount(None) - before >= -10, "the Qt binding leaks references to None"

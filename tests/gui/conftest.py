"""Fixtures for the GUI tests: a main window on the demo, with settings kept in tmp_path."""
import pytest
from PySide6.QtCore import QSettings

from engine.config import MetricsSpec
from gui.main_window import MainWindow

OPEN_TIMEOUT_MS = 60_000
RUN_TIMEOUT_MS = 120_000


@pytest.fixture(autouse=True)
def never_block_on_questions(monkeypatch):
    """"Discard the pruned model?" is a modal question: in tests it is answered Yes without a
    dialog (a test that checks the question replaces ``window.ask``), so closing never blocks."""
    from gui.window.guard import WindowGuard
    monkeypatch.setattr(WindowGuard, "ask", staticmethod(lambda parent, title, text, confirm: True))


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("run_store", str(tmp_path / "runs"))   # the run history stays in tmp_path
    w = MainWindow(settings)
    # fewer timed runs keep the tests quick; latency is still measured the same way
    w.metrics_spec = MetricsSpec(latency_runs=5, latency_warmup=1)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def wait_done(qtbot, window, start, op, timeout=RUN_TIMEOUT_MS):
    """Calls ``start()`` and waits until the window took in the end of ``op``; fails on an engine
    error. (Waits on the window's GUI-thread signals: pytest-qt's waitSignal must not be woken
    from the worker thread.)"""
    failures = []
    window.operation_failed.connect(lambda o, m: failures.append((o, m)))
    with qtbot.waitSignal(window.operation_finished, timeout=timeout,
                          check_params_cb=lambda o: o == op):
        assert start() is not False
    assert not failures, failures
    assert window.busy_op is None


@pytest.fixture
def demo_window(qtbot, window):
    """The window as the user sees it after start-up: the demo model and data opened."""
    wait_done(qtbot, window, window.open_demo, "open", OPEN_TIMEOUT_MS)
    return window


def dark_palette(light):
    """``light`` with the dark colours a system dark theme gives (Base, Window and their text)."""
    from PySide6.QtGui import QColor, QPalette
    dark = QPalette(light)
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        dark.setColor(group, QPalette.ColorRole.Base, QColor(30, 30, 30))
        dark.setColor(group, QPalette.ColorRole.Window, QColor(45, 45, 45))
        dark.setColor(group, QPalette.ColorRole.Text, QColor(230, 230, 230))
        dark.setColor(group, QPalette.ColorRole.WindowText, QColor(230, 230, 230))
    return dark

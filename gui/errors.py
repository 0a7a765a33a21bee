"""The window's last resort: an exception that escapes a Qt slot must never die silently.

PySide6 hands an exception raised in a slot to ``sys.excepthook`` and carries on, so by default the
user sees nothing while the panel it was updating is left half-done. This hook shows a one-line
dialog and puts the traceback in the Log view. It is installed by :func:`gui.app.main` (tests
install it explicitly: pytest-qt keeps its own hook to fail on such exceptions).
"""
from __future__ import annotations

import sys
import traceback
from typing import Callable

from engine.messages import one_line

ExceptHook = Callable[..., None]


def install_last_resort_handler(window) -> ExceptHook:
    """Installs the hook for ``window``; returns the previous hook (to restore it)."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        try:
            window.log_view.append("Unexpected error:\n"
                                   + "".join(traceback.format_exception(exc_type, exc, tb)).rstrip())
            window.show_error("Unexpected error", f"{one_line(exc)} (the Log view has the details)")
        except Exception:   # the window itself is gone or broken: at least the terminal gets it
            previous(exc_type, exc, tb)

    sys.excepthook = hook
    return previous

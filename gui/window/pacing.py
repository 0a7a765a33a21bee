"""The worker's answers, taken in one at a time, one per turn of the window's event loop.

Qt delivers every queued signal waiting for the GUI thread in one go, and repaints after all of
them. When an operation ends the worker sends a burst (the new state's snapshot, the model's
sparsities, the metrics, the run history, "finished"); at ResNet-50 size their handlers and the
one repaint of every view they changed held the GUI thread 100-150 ms (bench/scale.py's
heartbeat, after Stop of fine-tuning and of the sensitivity scan). Here each answer becomes a
job in one first-in, first-out queue that a zero-interval timer runs one per turn, so the window
repaints and its timers fire between them. Order is kept: "finished" still comes after
everything the operation sent, and views are up to date when the window announces it.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

from PySide6.QtCore import QObject, QTimer, SignalInstance


class _Relay(QObject):
    """Receives one worker signal on the GUI thread (a QObject living there, so Qt queues the
    call across threads; a plain function or lambda would run on the worker's thread) and
    queues its handler."""

    def __init__(self, pacer: "AnswerPacer", handler: Callable) -> None:
        super().__init__(pacer)
        self._pacer, self._handler = pacer, handler

    def call(self, *args) -> None:
        self._pacer.add(self._handler, args)


class AnswerPacer(QObject):
    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self._jobs: deque[tuple[Callable, tuple]] = deque()
        # single-shot, started again after each job: a timer due since before the job (the
        # window's own, a heartbeat) then comes first; a repeating one was due again at once
        # and ran two jobs back to back
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._run_one)

    def connect(self, signal: SignalInstance, handler: Callable) -> None:
        """``handler`` (any callable) runs on the GUI thread, in its turn, with the signal's
        arguments."""
        signal.connect(_Relay(self, handler).call)

    def add(self, handler: Callable, args: tuple) -> None:
        self._jobs.append((handler, args))
        if not self._timer.isActive():
            self._timer.start()

    def next_up(self, *jobs: Callable[[], None]) -> None:
        """Runs ``jobs`` (no arguments) one per turn, in order, before any answer still waiting:
        a handler with much to draw splits its views into them."""
        for job in reversed(jobs):
            self._jobs.appendleft((job, ()))
        if self._jobs and not self._timer.isActive():
            self._timer.start()

    @property
    def pending(self) -> int:
        return len(self._jobs)

    def _run_one(self) -> None:
        handler, args = self._jobs.popleft()
        try:
            handler(*args)
        finally:
            if self._jobs:
                self._timer.start()

"""Progress reporting and cooperative cancellation shared by every long engine operation.

Every long operation takes ``progress`` (a callable receiving :class:`Progress`) and ``cancel``
(a :class:`CancelToken`). The engine checks the token between batches, so a Stop is honoured within
one batch; it never kills a thread, which would leave the model half-updated.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional


class Cancelled(Exception):
    """Raised inside the engine when the user asked to stop; callers treat it as a clean stop."""


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("stopped by the user")


@dataclass(frozen=True)
class Progress:
    """One progress report. ``total`` is 0 when unknown; ``eta_s`` is None until it can be estimated."""
    stage: str
    step: int
    total: int
    message: str = ""
    eta_s: Optional[float] = None
    loss: Optional[float] = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total) if self.total else 0.0


ProgressFn = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    pass


class ProgressTracker:
    """Turns step counts into :class:`Progress` reports with an ETA.

    Reports are throttled (at most one per ``min_interval_s`` except the last) because a GUI that
    receives one signal per batch of a fast model spends its time repainting instead of responding.
    """

    def __init__(self, stage: str, total: int, progress: Optional[ProgressFn],
                 min_interval_s: float = 0.05) -> None:
        self.stage = stage
        self.total = total
        self.progress = progress or no_progress
        self.min_interval_s = min_interval_s
        self._start = time.perf_counter()
        self._last = 0.0

    def update(self, step: int, message: str = "", loss: Optional[float] = None,
               force: bool = False) -> None:
        now = time.perf_counter()
        final = self.total and step >= self.total
        if not (force or final) and now - self._last < self.min_interval_s:
            return
        self._last = now
        elapsed = now - self._start
        eta = None
        if self.total and step > 0:
            eta = elapsed / step * max(0, self.total - step)
        self.progress(Progress(self.stage, step, self.total, message, eta, loss))


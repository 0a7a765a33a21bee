"""Progress reporting and cooperative cancellation shared by every long engine operation.

Every long operation takes ``progress`` (a callable receiving :class:`Progress`) and ``cancel``
(a :class:`CancelToken`). The engine checks the token between batches, and :func:`stop_inside_passes`
also checks it at every module's forward and every parameter's gradient, so a Stop is honoured
within one layer even when one batch of a big model takes many seconds. It never kills a thread,
which would leave the model half-updated: the raised :class:`Cancelled` unwinds to the operation,
which restores the model as it does for any error.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from torch import nn
from torch.nn.modules.module import register_module_forward_pre_hook


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


def check_stop(cancel: Optional[CancelToken]) -> None:
    """A Stop point in work that runs no module forward (a global ranking of millions of scores,
    one layer's masks after another): raises :class:`Cancelled` if ``cancel`` was cancelled."""
    if cancel is not None:
        cancel.raise_if_cancelled()


@contextlib.contextmanager
def stop_inside_passes(cancel: Optional[CancelToken],
                       model: Optional[nn.Module] = None) -> Iterator[None]:
    """While active, a cancelled ``cancel`` raises :class:`Cancelled` at the next module forward
    run by this thread (a global forward-pre-hook, so copies made during the operation -- a
    channel-removal candidate, a latency clone -- are covered too) and, for ``model``, at the next
    parameter gradient computed by ``backward()``.

    Backward uses per-parameter tensor hooks rather than module full-backward hooks: the latter wrap
    outputs in a view that in-place layers (ResNet's ``ReLU(inplace=True)``) then refuse to modify.
    The forward hook only raises in the thread that started the operation, so another thread's
    forward (the GUI's, a second session's) is never interrupted by this Stop.
    """
    if cancel is None or _in_distributed_job():
        yield
        return
    owner = threading.get_ident()

    def check_forward(_module, _args):
        if cancel.cancelled and threading.get_ident() == owner:
            raise Cancelled("stopped by the user")

    def check_gradient(grad):
        cancel.raise_if_cancelled()
        return grad

    forward = _ForwardCheck(check_forward)
    _active_checks.__dict__.setdefault("stack", []).append(forward)
    handles = []
    if model is not None:
        handles = [p.register_hook(check_gradient) for p in model.parameters() if p.requires_grad]
    try:
        yield
    finally:
        _active_checks.stack.remove(forward)
        forward.uninstall()
        for handle in handles:
            handle.remove()


class _ForwardCheck:
    def __init__(self, hook: Callable) -> None:
        self.hook = hook
        self.handle = register_module_forward_pre_hook(hook)

    def uninstall(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def install(self) -> None:
        if self.handle is None:
            self.handle = register_module_forward_pre_hook(self.hook)


_active_checks = threading.local()


@contextlib.contextmanager
def without_pass_checks() -> Iterator[None]:
    """Lifts this thread's in-pass Stop checks for a stretch of short passes whose timing they would
    distort (latency runs: about a microsecond per module call, 10% of a small model's forward); the
    caller checks its token between passes instead."""
    checks = list(getattr(_active_checks, "stack", []))
    for check in checks:
        check.uninstall()
    try:
        yield
    finally:
        for check in checks:
            if check in getattr(_active_checks, "stack", []):
                check.install()


def _in_distributed_job() -> bool:
    """In a torchrun job every rank must stop after the same step (engine.distributed decides it
    together); one rank raising mid-pass would leave the others waiting in an all-reduce."""
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def stoppable(method: Callable) -> Callable:
    """Runs a method taking a ``cancel`` argument inside :func:`stop_inside_passes` for the
    object's live ``model`` (used on :class:`engine.session.Session`'s long operations)."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        cancel = signature.bind(self, *args, **kwargs).arguments.get("cancel")
        with stop_inside_passes(cancel, getattr(self, "model", None)):
            return method(self, *args, **kwargs)
    return wrapper


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


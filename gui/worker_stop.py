"""What the worker does after Stop: tell the window at once, then only what the model needs.

A mixin of :class:`gui.worker.EngineWorker` (it uses the worker's session, signals and
``_emit_state``). A Stop that put the model back exactly as it was (engine.transaction; the
session's ``model_version`` is back where the charts last saw it) sends no new charts: at ResNet-50
size a snapshot, a size preview and an undo step take seconds, and a request sent next would wait
behind them. Only live snapshots sent during the operation are undone. A Stop that came after the
model changed (a kept epoch, a schedule's rounds, during the charts of a finished prune) still gets
that change's charts and undo step, after the window has heard it stopped.
"""
from __future__ import annotations

from typing import Optional

from engine.snapshots import WeightSnapshot


class WorkerStop:
    # the session's model_version the charts last showed in full (_emit_state), that state's
    # snapshot, and the snapshot sent last (live charts while training may differ from it)
    charted_version: Optional[int] = None
    settled_snapshot: Optional[WeightSnapshot] = None
    last_snapshot: Optional[WeightSnapshot] = None
    pending_step: Optional[tuple[str, str]] = None   # (label, op) not yet in the history

    def _after_stop(self, op: str) -> None:
        self.stopped.emit(op)   # the model is consistent already: say so at once
        if self.session is not None and self.session.model_version == self.charted_version:
            self._resend_settled_snapshot()
        else:
            self._emit_state()
        self._record_pending_step()   # a change the Stop came after is still one undo step

    def _show_change(self, label: str, op: str) -> None:
        """The charts of a changed model, before its undo step (writing it takes seconds at full
        size; the caller records it next). A Stop during the charts is answered at once and
        :meth:`_after_stop` completes both."""
        self.pending_step = (label, op)
        self._emit_state()

    def _record_pending_step(self) -> None:
        if self.pending_step is not None and self.session is not None:
            label, op = self.pending_step
            self.pending_step = None
            self.session.record_step(label, op)
            self._emit_steps()

    def _resend_settled_snapshot(self) -> None:
        """After a Stop that left the model as the charts last showed it: live snapshots sent
        during the operation (training, a schedule's rounds) are undone by sending that state's
        snapshot again; the size preview, widths and details still hold."""
        if self.last_snapshot is self.settled_snapshot or self.settled_snapshot is None:
            return
        self.last_snapshot = self.settled_snapshot
        self.snapshot.emit(self.settled_snapshot)
        self._emit_matrix()

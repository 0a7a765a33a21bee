"""Every operation that changes the model runs as a transaction: on any exception -- a Stop, a bad
image in batch 7, a bug in a plugin, Ctrl-C -- the model is put back exactly as it was (weights,
BatchNorm statistics and other buffers, masks and pruning parametrizations, train/eval mode,
requires_grad), so a later Export can never write a half-done model.

Which copies of the model exist, and why (memory matters: a ResNet-50 is ~100 MB, BERT-base ~440 MB):

- ``Session.original``: the untouched original, always (Revert, the Compare table, histogram ranges).
- One restore point per outermost operation: a deep copy of the live model taken when it starts and
  dropped when it ends. Nested operations (a schedule's prune and fine-tune steps) share the outer
  one instead of taking their own. Fine-tuning uses it as its "weights from before fine-tuning"
  (what Stop goes back to when no epoch finished) instead of copying the weights a second time.
- Operations that already work on a copy take none: channel removal builds a new model and only
  swaps it in at the end; the sensitivity scan prunes a copy.
- Fine-tuning additionally keeps the best epoch's weights, and the iterative schedule the last
  round above its accuracy floor: those are results, not restore points.
- The undo history (``Session.steps``, engine/history.py) keeps each step on disk, not in memory.

Restoring swaps the copy in as the session's model (cheaper and more exact than copying back).
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Optional

from torch import nn

if TYPE_CHECKING:
    from engine.session import Session


class ModelModes:
    """The train/eval flag of every submodule: ``model.train()`` changes them all, and restoring
    them with one ``eval()`` would be wrong for a model that keeps some parts in train mode."""

    def __init__(self, model: nn.Module) -> None:
        self._modes = [(m, m.training) for m in model.modules()]

    def restore(self) -> None:
        for module, training in self._modes:
            module.training = training


@contextmanager
def model_transaction(session: "Session", copy_model: bool = True) -> Iterator[Optional[nn.Module]]:
    """Yields the restore point (a copy of the live model, or None where the operation works on a
    copy itself or an outer transaction already holds one). On any exception the session gets its
    model, its last channel removal, its measurements and its ``model_version`` back, and the
    exception propagates."""
    depth = getattr(session, "_transaction_depth", 0)
    restore_point = copy.deepcopy(session.model) if copy_model and depth == 0 else None
    saved = (session.model, session.loaded, session.structured, session.current_metrics)
    version = session.model_version
    session._transaction_depth = depth + 1
    try:
        yield restore_point
    except BaseException:
        if depth == 0:
            session.model, session.loaded, session.structured, session.current_metrics = saved
            if restore_point is not None:
                session._replace_model(restore_point)
            session.model_version = version   # exactly as before, so views need not re-read it
        raise
    finally:
        session._transaction_depth = depth

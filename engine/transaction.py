"""Every operation that changes the model runs as a transaction: on any exception -- a Stop, a bad
image in batch 7, a bug in a plugin, Ctrl-C -- the model is put back exactly as it was (weights,
BatchNorm statistics and other buffers, masks and pruning parametrizations, train/eval mode,
requires_grad), so a later Export can never write a half-done model.

Which copies of the model exist, and why (memory matters: a ResNet-50 is ~100 MB, BERT-base ~440 MB):

- ``Session.original``: the untouched original, always (Revert, the Compare table); at full size
  in a file, mapped back for each use (engine.kept).
- One restore point per outermost operation: a copy of the live model taken when it starts and
  dropped when it ends, in a file at full size like the original (engine.kept); the original
  itself while no operation has changed the model yet. It holds pruning masks as booleans (a
  quarter of torch's float masks) and not the masked weights (``weight_orig * mask``, recomputed
  if it is swapped in): 157 MiB (269 -> 112) less than a plain deep copy of a pruned ResNet-50,
  about 600 MB less at BERT-base. Nested operations (a schedule's prune and fine-tune steps)
  share the outer one instead of taking their own. Fine-tuning uses it as its "weights from
  before fine-tuning" (what Stop goes back to when no epoch finished) instead of copying the
  weights a second time.
- Operations that already work on a copy take none: channel removal builds a new model and only
  swaps it in at the end; the sensitivity scan prunes a copy.
- Fine-tuning additionally keeps the best epoch's weights, and the iterative schedule the last
  round above its accuracy floor: those are results, not restore points.
- The undo history (``Session.steps``, engine/history.py) keeps each step on disk, not in memory.

Restoring swaps the copy in as the session's model (cheaper and more exact than copying back).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Optional

import torch
from torch import nn

from engine.kept import KeptModel
from engine.memory import release_free_memory
from engine.pruning.targets import is_binary_mask, prunable_targets, refresh_masked_weights

if TYPE_CHECKING:
    from engine.session import Session


class ModelModes:
    """The train/eval flag of every submodule: ``model.train()`` changes them all, and restoring
    them with one ``eval()`` would be wrong for a model that keeps some parts in train mode."""

    def __init__(self, model: nn.Module) -> None:
        self._modes = [(m, m.training) for m in model.modules()]

    def restore(self, onto: Optional[nn.Module] = None) -> None:
        """Puts the flags back; with ``onto``, on that model's modules instead (a copy of the
        same structure, swapped in for the recorded model)."""
        modules = [m for m, _ in self._modes] if onto is None else list(onto.modules())
        for module, (_, training) in zip(modules, self._modes):
            module.training = training


@contextmanager
def model_transaction(session: "Session", copy_model: bool = True) -> Iterator[Optional[KeptModel]]:
    """Yields the restore point (a compact copy of the live model, in a file at full size, or None
    where the operation works on a copy itself or an outer transaction already holds one). On any
    exception the session gets its model, its last channel removal, its measurements and its
    ``model_version`` back, and the exception propagates."""
    depth = getattr(session, "_transaction_depth", 0)
    restore_point = _restore_point(session) if copy_model and depth == 0 else None
    modes = ModelModes(session.model)
    saved = (session.model, session.loaded, session.structured, session.current_metrics)
    version = session.model_version
    session._transaction_depth = depth + 1
    try:
        yield restore_point
    except BaseException:
        if depth == 0:
            session.model, session.loaded, session.structured, session.current_metrics = saved
            if restore_point is not None:
                restored = with_float_masks(restore_point.model())
                modes.restore(onto=restored)
                session._replace_model(restored)
            session.model_version = version   # exactly as before, so views need not re-read it
        raise
    else:
        if depth == 0:
            # the operation's scratch memory (scores, activations: gigabytes at full size) stays
            # in malloc's heaps otherwise, and counts under what the caller does next (charts,
            # measuring). Not after a failure or Stop: answering comes first (the GUI's worker
            # gives memory back after every request anyway).
            release_free_memory()
    finally:
        session._transaction_depth = depth


def _restore_point(session: "Session") -> KeptModel:
    """A compact copy of the live model; or, while the live model is still the model as opened
    (no operation has changed it: ``model_version`` 0) and the session keeps that in a file, the
    session's original itself, so the first operation writes nothing (440 MB and 0.3-0.5 s at
    BERT-base size). Only weights count there: the train/eval flags are put back from the live
    model as it was (the transaction records them)."""
    original = session._original
    if (session.model_version == 0 and original.on_disk
            and all(t.device.type == "cpu" for t in session.model.state_dict().values())):
        return original
    return KeptModel(session.model, compact(session.model))


# what a compact copy holds instead of each masked weight until with_float_masks recomputes it
_RECOMPUTED = torch.empty(0)


def _binary_masks(model: nn.Module) -> Iterator[tuple[nn.Module, str, torch.Tensor]]:
    for module in model.modules():
        for name, buffer in module._buffers.items():
            if buffer is not None and buffer.is_floating_point() and is_binary_mask(name, buffer):
                yield module, name, buffer


def compact(model: nn.Module) -> dict[int, torch.Tensor]:
    """What a compact copy of ``model`` holds instead of some of its tensors, as a deepcopy memo:
    0/1 pruning masks as booleans, and nothing for the masked weights (``weight = weight_orig *
    weight_mask``, recomputable), so a copy is made without a float copy of either on the way.
    Such a copy's ``state_dict()`` loads into the live model exactly (``load_state_dict``
    converts; the masked weights are not in it); to run it as a model, :func:`with_float_masks`
    first."""
    memo = {id(buffer): buffer.detach().bool() for _m, _n, buffer in _binary_masks(model)}
    for target in prunable_targets(model):
        if target.is_masked:
            memo[id(getattr(target.module, target.param_name))] = _RECOMPUTED
    return memo


@torch.no_grad()
def with_float_masks(model: nn.Module) -> nn.Module:
    """Makes a compact copy (:func:`compact`) runnable again: each boolean mask becomes the dtype
    of the weight it masks, as torch.nn.utils.prune made it."""
    for module in model.modules():
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.dtype == torch.bool and name.endswith("_mask"):
                weight = getattr(module, name[:-len("_mask")] + "_orig", None)
                module._buffers[name] = buffer.to(weight.dtype if weight is not None
                                                  else torch.get_default_dtype())
    refresh_masked_weights(model)   # the masked weights a compact copy left out
    return model

"""Fine-tuning a pruned model with its masks held fixed.

Masks from torch.nn.utils.prune make every forward compute ``weight = weight_orig * mask`` in a
Python hook, keep that product for backward and multiply the gradient by the mask again. While
fine-tuning (without a schedule changing masks) :class:`_MasksInPlace` trains ``weight_orig`` itself
instead, its pruned entries zeroed before the first step and again after every optimizer step: the
same effective weights, without a masked copy of every weight per step; bench/scale.py compares
masked fine-tuning's steps/s and memory with a plain loop.
The best epoch by *validation* accuracy (then loss) is kept (the test split is evaluated each epoch for the
curves, never to choose: choosing on it would report a tuned figure as a held-out one); with no
validation split the last epoch is kept. Stop restores the kept epoch, or the weights from before
fine-tuning if no epoch finished, so a cancelled run never leaves a half-trained model behind.
Any other failure (an unreadable image in batch 7, a NaN from a plugin) puts back the weights,
buffers and train/eval mode from before fine-tuning and raises :class:`FinetuneError` naming the
epoch and batch.

Full copies of the model's weights while fine-tuning, and why each exists:
- the live model (trained in place; masked layers hold ``weight_orig`` and the mask; while training,
  ``weight`` is ``weight_orig`` itself, not a product recomputed at each forward);
- the state from before fine-tuning (``restore_point``, the Session's transaction copy, reused
  here rather than copied again): what a failure puts back, and what Stop keeps when no epoch
  finished;
- ``kept``: the best epoch so far, allocated at the first one and overwritten in place, so
  choosing a new best epoch never holds two copies at once; none when the best is the last epoch
  (the live model is it), so one epoch of fine-tuning copies nothing;
- the optimizer's momentum/Adam buffers and the gradients, as in any PyTorch training loop;
- outside this module, :class:`engine.session.Session` keeps ``original`` (Revert and the
  comparison table's original column), in a file at full size (engine.kept).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn
from torch.nn.utils import prune

from engine.config import FinetuneSpec
from engine.distributed import training_strategy
from engine.distributed_env import is_peer_failure
from engine.kept import KeptModel
from engine.messages import one_line
from engine.metrics import (
    EvalResult,
    eval_batch_size,
    evaluate,
    forward_batch,
    model_device,
    split_batch,
    to_device,
)
from engine.progress import Cancelled, CancelToken, ProgressFn, ProgressTracker
from engine.pruning.targets import is_binary_mask, prunable_targets, refresh_masked_weights
from engine.transaction import ModelModes


class FinetuneError(ValueError):
    """Fine-tuning failed part-way; the model has been put back as it was before it."""


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float
    test: EvalResult
    seconds: float
    val: Optional[EvalResult] = None


@dataclass
class FinetuneResult:
    epochs: list[EpochResult] = field(default_factory=list)
    best_epoch: Optional[int] = None
    stopped_early: bool = False
    cancelled: bool = False

    @property
    def best(self) -> Optional[EpochResult]:
        return next((e for e in self.epochs if e.epoch == self.best_epoch), None)


def _selection_key(val: EvalResult) -> tuple[float, float]:
    """Higher is better: validation accuracy, ties broken by lower validation loss. A small
    validation split often ties on accuracy (several epochs at 100%), and the first of equals is
    rarely the best model."""
    return (val.accuracy, -val.loss)


class _StateCopy:
    """One detached copy of a model's state_dict, refreshed in place (no second copy while
    copying) and loaded back on Stop or at the end. Pruning masks (0/1 floats as
    torch.nn.utils.prune stores them) are kept as booleans, a quarter of the memory; loading
    converts them back exactly."""

    def __init__(self, model: nn.Module) -> None:
        self.state: dict[str, torch.Tensor] = {}
        self._take(model.state_dict())

    @torch.no_grad()
    def _take(self, current) -> None:
        self.state = {k: (v.detach().bool() if is_binary_mask(k, v) else v.detach().clone())
                      for k, v in current.items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        current = model.state_dict()
        if current.keys() != self.state.keys() or any(
                self.state[k].shape != v.shape
                or (self.state[k].dtype == torch.bool and not is_binary_mask(k, v))
                for k, v in current.items()):
            self._take(current)
            return
        for key, value in current.items():
            self.state[key].copy_(value)

    def restore(self, model: nn.Module) -> None:
        model.load_state_dict(self.state)


def _keep(kept: Optional[_StateCopy], model: nn.Module) -> _StateCopy:
    """The best epoch so far: the first one allocates the copy, later ones overwrite it."""
    if kept is None:
        return _StateCopy(model)
    kept.update(model)
    return kept


class _MasksInPlace:
    """While fine-tuning, each masked layer computes with ``weight_orig`` itself, its pruned entries
    held at zero, instead of torch.nn.utils.prune's ``weight = weight_orig * mask`` recomputed by a
    forward pre-hook at every forward. The effective weights are the same, number for number: SGD
    and Adam update each entry on its own, and the pruned ones are zeroed again after every step
    (:meth:`after_step`). What goes: a masked copy of every weight made at each forward and held
    for backward (94 MB at ResNet-50 size, 340 MB at BERT-base), the multiplications by the mask
    forward and backward, and one Python hook call per layer per forward. ``weight_orig``'s pruned
    entries become zeros (under torch's own masked training momentum and weight decay move them;
    they never count). :func:`finetune` gives the layers back however its loop ends: the hooks
    are back and ``weight`` is a product again (refresh_masked_weights).

    Only binary masks installed by torch.nn.utils.prune hooks are taken over; a soft mask (values
    other than 0 and 1) would be applied again at every step, so a model with one keeps torch's way
    for all its layers."""

    def __init__(self, model: nn.Module) -> None:
        self.layers: list[tuple[nn.Module, str, torch.Tensor, nn.Parameter]] = []
        self._hooks: list[tuple[nn.Module, list, dict]] = []
        for target in prunable_targets(model):
            if not target.is_masked:
                continue
            module, name, mask = target.module, target.param_name, target.mask()
            if not is_binary_mask(name + "_mask", mask) or not any(
                    isinstance(h, prune.BasePruningMethod) and h._tensor_name == name
                    for h in module._forward_pre_hooks.values()):
                self.layers = []
                return
            self.layers.append((module, name, mask, getattr(module, name + "_orig")))

    def take_over(self, boolean_masks: bool = True) -> None:
        """Sets torch's mask hooks aside and zeroes the pruned entries of ``weight_orig``. With
        ``boolean_masks`` the masks are held as booleans until :meth:`give_back` (a quarter of
        torch's float masks: 258 MB less at BERT-base); not under DDP, which holds the buffers
        it broadcasts."""
        if boolean_masks:
            self._replace_masks(lambda mask, _param: mask.bool())
        seen = set()
        for module, name, _mask, _param in self.layers:
            if id(module) in seen:
                continue
            seen.add(id(module))
            hooks = module._forward_pre_hooks
            taken = {k: h for k, h in hooks.items() if isinstance(h, prune.BasePruningMethod)}
            self._hooks.append((module, list(hooks), taken))
            for key in taken:
                del hooks[key]
        self.after_step()

    @torch.no_grad()
    def after_step(self) -> None:
        for module, name, mask, param in self.layers:
            param.mul_(mask)
            # the attribute, not a registered parameter: forward reads ``module.weight``
            module.__dict__[name] = param

    def _replace_masks(self, convert: Callable[[torch.Tensor, nn.Parameter], torch.Tensor]) -> None:
        """Each layer's mask buffer (and its entry here) becomes ``convert(mask, weight_orig)``."""
        layers = []
        for module, name, mask, param in self.layers:
            mask = module._buffers[name + "_mask"] = convert(mask, param)
            layers.append((module, name, mask, param))
        self.layers = layers

    def give_back(self) -> None:
        """Puts the masks (as the weight's dtype, as torch.nn.utils.prune made them) and the hooks
        back in their order; the caller then makes ``weight`` a product again
        (refresh_masked_weights), after loading whichever state it keeps."""
        self._replace_masks(lambda mask, param: mask.to(param.dtype) if mask.dtype == torch.bool
                            else mask)
        for module, order, taken in self._hooks:
            hooks = module._forward_pre_hooks
            hooks.update(taken)
            for key in order:   # the order they ran in before
                if key in hooks:
                    hooks.move_to_end(key)
        self._hooks = []


def make_optimizer(model: nn.Module, spec: FinetuneSpec) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum,
                           weight_decay=spec.weight_decay)


def finetune(model: nn.Module, data, spec: FinetuneSpec, seed: int = 0,
             progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None,
             on_epoch: Optional[Callable[[EpochResult], None]] = None,
             on_step: Optional[Callable[[int, float], None]] = None,
             after_step: Optional[Callable[[nn.Module], None]] = None,
             best_from_step: int = 0,
             restore_point: Optional[KeptModel] = None) -> FinetuneResult:
    """Trains ``model`` in place on ``data.train``; evaluates on ``data.val`` (which picks the kept
    epoch and drives early stopping) and ``data.test`` (reported) after each epoch.

    ``on_step(global_step, loss)`` is called after every batch (the GUI throttles what it draws);
    ``after_step(model)`` lets a schedule adjust masks during training. Epochs ending before
    ``best_from_step`` are not candidates for the kept best epoch (a gradual schedule has not
    reached its target sparsity yet then). ``restore_point``: a copy of ``model`` as it is now,
    held by the caller's transaction; its weights serve as "before fine-tuning" instead of a copy.
    """
    spec.validate()
    result = FinetuneResult()
    if spec.epochs == 0:
        return result
    # one process, or one rank of a torchrun job (engine.distributed): same loop either way
    strategy = training_strategy()
    strategy.seed(seed)
    device = model_device(model)
    trained = strategy.wrap(model)   # DDP wraps the pruned model, as it is now
    optimizer = make_optimizer(model, spec)
    loader = strategy.train_loader(data, spec.batch_size, seed)
    batches = len(loader) if spec.max_batches_per_epoch is None else min(len(loader),
                                                                        spec.max_batches_per_epoch)
    tracker = ProgressTracker("Fine-tuning", spec.epochs * batches, progress)
    modes = ModelModes(model)
    initial_state = (restore_point.model().state_dict() if restore_point is not None
                     else copy.deepcopy(model.state_dict()))
    kept: Optional[_StateCopy] = None   # the best epoch so far; None keeps the initial state
    best_key = (-1.0, 0.0)
    since_best = 0
    step = 0
    where = "before the first batch"
    # a schedule (after_step) changes masks while training: it keeps torch's masked weights
    in_place = _MasksInPlace(model) if after_step is None else None
    try:
        if in_place is not None:
            in_place.take_over(boolean_masks=trained is model)
        for epoch in range(1, spec.epochs + 1):
            start = time.perf_counter()
            strategy.start_epoch(loader, epoch)
            trained.train()
            loss_sum, seen = 0.0, 0
            where = f"epoch {epoch}, batch 1 of {batches}"
            for i, batch in enumerate(loader):
                if i >= batches:
                    break
                strategy.check_cancel(cancel)
                inputs, labels = split_batch(batch)
                inputs, labels = to_device(inputs, device), labels.to(device)
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(forward_batch(trained, inputs), labels)
                loss.backward()
                optimizer.step()
                if in_place is not None:
                    in_place.after_step()
                if after_step is not None:
                    after_step(model)
                step += 1
                loss_value = strategy.step_loss(loss, cancel)
                loss_sum += loss_value * labels.numel()
                seen += labels.numel()
                if on_step is not None:
                    on_step(step, loss_value)
                tracker.update(step, f"epoch {epoch}/{spec.epochs}", loss=loss_value)
                where = f"epoch {epoch}, batch {i + 2} of {batches}"
            where = f"epoch {epoch}, evaluating"
            # the next step would drop them anyway: evaluation and the kept copy go without them
            optimizer.zero_grad(set_to_none=True)
            strategy.end_epoch(model)
            eval_batch = eval_batch_size(model, data)
            val = (evaluate(model, strategy.eval_loader(data, "val", eval_batch), data.num_classes,
                            cancel=cancel, reduce=strategy.reduce_eval)
                   if getattr(data, "val", None) is not None else None)
            test = evaluate(model, strategy.eval_loader(data, "test", eval_batch), data.num_classes,
                            cancel=cancel, reduce=strategy.reduce_eval)
            epoch_result = EpochResult(epoch, loss_sum / max(seen, 1), test,
                                       time.perf_counter() - start, val)
            result.epochs.append(epoch_result)
            if on_epoch is not None:
                on_epoch(epoch_result)
            if step < best_from_step:
                continue
            # the last epoch, when kept, is the live model itself: no copy of it (kept: None)
            last = epoch == spec.epochs
            if val is None:  # nothing held out to choose on: keep the latest epoch
                result.best_epoch = epoch
                kept = None if last else _keep(kept, model)
            elif _selection_key(val) > best_key:
                best_key, result.best_epoch, since_best = _selection_key(val), epoch, 0
                kept = None if last else _keep(kept, model)
            else:
                since_best += 1
                if spec.patience is not None and since_best >= spec.patience:
                    result.stopped_early = True
                    break
    except Cancelled:
        result.cancelled = True
    except BaseException as exc:
        if in_place is not None:
            in_place.give_back()
        try:
            model.load_state_dict(initial_state)
            refresh_masked_weights(model)
        except RuntimeError:
            pass   # a schedule changed which masks exist: its transaction swaps its copy back in
        modes.restore()
        # KeyboardInterrupt, SystemExit, and a torchrun peer's loss (engine.distributed_env
        # reports that by its type) propagate as they are
        if not isinstance(exc, Exception) or is_peer_failure(exc):
            raise
        raise FinetuneError(f"fine-tuning failed at {where} (the model is as it was before "
                            f"fine-tuning): {one_line(exc, 200)}") from exc
    if in_place is not None:
        in_place.give_back()
    if kept is not None:
        kept.restore(model)
    elif result.best_epoch is None:   # no epoch finished, or none could be chosen
        model.load_state_dict(initial_state)
    refresh_masked_weights(model)
    model.eval()
    return result

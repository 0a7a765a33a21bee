"""Fine-tuning a pruned model with its masks held fixed.

With torch.nn.utils.prune masks installed, the forward pass computes ``weight = weight_orig * mask``,
so pruned weights get no effective update and stay zero without re-applying masks after each step.
The best epoch by *validation* accuracy (then loss) is kept (the test split is evaluated each epoch for the
curves, never to choose: choosing on it would report a tuned figure as a held-out one); with no
validation split the last epoch is kept. Stop restores the kept epoch, or the weights from before
fine-tuning if no epoch finished, so a cancelled run never leaves a half-trained model behind.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from engine.config import FinetuneSpec
from engine.distributed import training_strategy
from engine.metrics import EvalResult, evaluate, forward_batch, model_device, split_batch, to_device
from engine.pruning.targets import refresh_masked_weights
from engine.progress import Cancelled, CancelToken, ProgressFn, ProgressTracker


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
             best_from_step: int = 0) -> FinetuneResult:
    """Trains ``model`` in place on ``data.train``; evaluates on ``data.val`` (which picks the kept
    epoch and drives early stopping) and ``data.test`` (reported) after each epoch.

    ``on_step(global_step, loss)`` is called after every batch (the GUI throttles what it draws);
    ``after_step(model)`` lets a schedule adjust masks during training. Epochs ending before
    ``best_from_step`` are not candidates for the kept best epoch (a gradual schedule has not
    reached its target sparsity yet then).
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
    best_state = copy.deepcopy(model.state_dict())
    best_key = (-1.0, 0.0)
    since_best = 0
    step = 0
    try:
        for epoch in range(1, spec.epochs + 1):
            start = time.perf_counter()
            strategy.start_epoch(loader, epoch)
            trained.train()
            loss_sum, seen = 0.0, 0
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
                if after_step is not None:
                    after_step(model)
                step += 1
                loss_value = strategy.step_loss(loss, cancel)
                loss_sum += loss_value * labels.numel()
                seen += labels.numel()
                if on_step is not None:
                    on_step(step, loss_value)
                tracker.update(step, f"epoch {epoch}/{spec.epochs}", loss=loss_value)
            strategy.end_epoch(model)
            eval_batch = max(spec.batch_size, 256)
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
            if val is None:  # nothing held out to choose on: keep the latest epoch
                result.best_epoch = epoch
                best_state = copy.deepcopy(model.state_dict())
            elif _selection_key(val) > best_key:
                best_key, result.best_epoch, since_best = _selection_key(val), epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                since_best += 1
                if spec.patience is not None and since_best >= spec.patience:
                    result.stopped_early = True
                    break
    except Cancelled:
        result.cancelled = True
    model.load_state_dict(best_state)
    refresh_masked_weights(model)
    model.eval()
    return result

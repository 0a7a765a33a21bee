"""Gradients of the loss with respect to the pruned weights, accumulated over k training batches.

Shared by every criterion that needs data (gradient magnitude, Taylor, OBD, BN slimming). Gradients
are taken with ``torch.autograd.grad`` on the live parameters (``weight_orig`` when a mask is
installed), so nothing is left in ``.grad`` and an optimizer the caller holds is undisturbed. The
model is put in eval mode while scoring (BatchNorm uses its running statistics, dropout is off), so
scores are deterministic for a seed and BN statistics are not changed by merely scoring.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn

from engine.metrics import forward_batch, split_batch, to_device
from engine.progress import ProgressTracker
from engine.pruning.base import PruneContext, PruneError
from engine.pruning.targets import PruneTarget
from engine.registry import Option

BATCHES_OPTION = Option("batches", int, 8, "Training batches k the gradients are accumulated over "
                        "(more is steadier and slower).", minimum=1, maximum=10_000)
BATCH_SIZE_OPTION = Option("grad_batch_size", int, 64, "Samples per batch when computing "
                           "gradients.", minimum=1, maximum=4096)


def training_batches(ctx: PruneContext, count: int, batch_size: int) -> Iterator[tuple]:
    """Up to ``count`` shuffled training batches (seeded by the run's seed), on the model's device."""
    if ctx.data is None:
        raise PruneError("this criterion needs data to compute gradients; load a data set first")
    loader = ctx.data.loader("train", batch_size, shuffle=True, seed=ctx.seed)
    for i, batch in enumerate(loader):
        if i >= count:
            break
        if ctx.cancel is not None:
            ctx.cancel.raise_if_cancelled()
        inputs, labels = split_batch(batch)
        yield to_device(inputs, ctx.device), labels.to(ctx.device)


@contextlib.contextmanager
def scoring_mode(model: nn.Module, params: list[torch.Tensor]):
    """Eval mode and requires_grad on the scored parameters for the duration; restores both."""
    was_training = model.training
    flags = [p.requires_grad for p in params]
    model.eval()
    for p in params:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        model.train(was_training)


def batch_loss(model: nn.Module, inputs, labels) -> torch.Tensor:
    return nn.functional.cross_entropy(forward_batch(model, inputs), labels)


def accumulate(targets: list[PruneTarget], ctx: PruneContext, batches: int, batch_size: int,
               per_batch: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               stage: str) -> list[torch.Tensor]:
    """Mean over up to ``batches`` training batches of ``per_batch(weight, grad)`` per target.

    ``weight`` is the live parameter (pruned entries still hold their original value; the caller's
    mask handling ranks them lowest anyway), ``grad`` the gradient of the mean batch loss.
    """
    params = [t.raw_weight() for t in targets]
    sums = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    tracker = ProgressTracker(stage, batches, ctx.progress)
    seen = 0
    with scoring_mode(ctx.model, params):
        for inputs, labels in training_batches(ctx, batches, batch_size):
            grads = torch.autograd.grad(batch_loss(ctx.model, inputs, labels), params,
                                        allow_unused=True)
            for i, (p, g) in enumerate(zip(params, grads)):
                if g is not None:
                    sums[i] += per_batch(p.detach().float(), g.detach().float())
            seen += 1
            tracker.update(seen, f"batch {seen}/{batches}")
    if seen == 0:
        raise PruneError("the training set is empty; gradient-based criteria need training data")
    if seen < batches:
        ctx.log(f"gradients accumulated over {seen} batch(es): the training set has no more")
    return [s / seen for s in sums]

"""Optimal Brain Damage (LeCun et al., 1990): saliency ½·h_ii·w_i², the second-order estimate of the
loss increase from removing weight i, with h_ii the diagonal of the Hessian of the training loss.

Small layers (at most ``exact_max_params`` weights) get the exact diagonal, one Hessian-vector
product per weight (see :func:`exact_diagonal`), so its cost grows with the layer size times the
batch size: on LeNet with 32-sample batches, conv1's 150 weights take ~2 s, conv2's 2,400 ~6 s. Larger layers get Hutchinson's estimate diag(H) ≈ E[z ⊙ Hz] over Rademacher
vectors z (seeded). Both are averaged over k training batches; the run log says which each layer got.
The diagonal is used as estimated (it can be negative away from a minimum, where removing the weight
is predicted to lower the loss, so such weights rank first).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from engine.progress import ProgressTracker
from engine.pruning.base import CRITERIA, Criterion, PruneContext, PruneError
from engine.pruning.gradients import (batch_loss, scoring_mode,
                                      training_batches)
from engine.pruning.targets import PruneTarget
from engine.registry import Option


def exact_diagonal(model: torch.nn.Module, key: str, param: torch.Tensor, inputs, labels,
                   cancel=None) -> torch.Tensor:
    """Exact diagonal of the Hessian of the batch loss w.r.t. one parameter (``key`` as in
    ``named_parameters``): Hessian-vector products with unit vectors, forward-over-reverse
    (``jvp`` of ``grad``) vmapped over CHUNK rows at a time. This measured 3-8x faster on CPU than
    one double-backward pass per weight."""
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    weight = param.detach()

    def loss(w):
        logits = torch.func.functional_call(model, {key: w}, args)
        return torch.nn.functional.cross_entropy(logits, labels)

    def hvp(v):
        return torch.func.jvp(torch.func.grad(loss), (weight,), (v,))[1]

    size = weight.numel()
    diag = torch.empty(size, dtype=torch.float32, device=weight.device)
    for start in range(0, size, CHUNK):
        if cancel is not None:
            cancel.raise_if_cancelled()
        rows = torch.arange(start, min(size, start + CHUNK), device=weight.device)
        unit = torch.zeros(rows.numel(), size, dtype=weight.dtype, device=weight.device)
        unit[torch.arange(rows.numel()), rows] = 1
        block = torch.func.vmap(hvp)(unit.reshape(rows.numel(), *weight.shape))
        diag[rows] = block.reshape(rows.numel(), size)[torch.arange(rows.numel()), rows].float()
    return diag.reshape(weight.shape)


# Hessian rows per vmapped chunk: bounds memory at CHUNK x the layer's size.
CHUNK = 128


@dataclass
class HessianDiagonal:
    """One target's Hessian diagonal, averaged over the batches, and how it was obtained."""
    values: torch.Tensor
    exact: bool
    # Hutchinson only: the estimate's standard error (per weight, over all probes) relative to the
    # estimate, ‖SE‖ / ‖ĥ‖; 0.1 means the noise is about a tenth of the signal
    relative_error: Optional[float] = None


class _ProbeStats:
    """Running sum and sum of squares of one layer's probe values z ⊙ Hz."""
    def __init__(self, like: torch.Tensor) -> None:
        self.total = torch.zeros_like(like, dtype=torch.float32)
        self.squares = torch.zeros_like(like, dtype=torch.float32)
        self.count = 0

    def add(self, value: Optional[torch.Tensor]) -> None:
        if value is not None:   # None: the layer's gradient does not depend on it (a zero block)
            value = value.float()
            self.total += value
            self.squares += value * value
        self.count += 1

    def estimate(self) -> HessianDiagonal:
        mean = self.total / max(1, self.count)
        variance = (self.squares / max(1, self.count) - mean * mean).clamp(min=0)
        if self.count > 1:
            variance = variance * self.count / (self.count - 1)
        standard_error = (variance / max(1, self.count)).sqrt()
        norm = float(mean.norm())
        return HessianDiagonal(mean, False, float(standard_error.norm()) / norm if norm else None)


def hessian_diagonals(targets: list[PruneTarget], ctx: PruneContext, batches: int, batch_size: int,
                      exact_max_params: int, samples: int,
                      per_layer: bool = True) -> list[HessianDiagonal]:
    """Per target: the Hessian diagonal averaged over batches, exact or estimated.

    Hutchinson's estimate is E[z ⊙ Hz]. With ``per_layer`` each layer gets its own probe through
    its own Hessian block, H_ii z_i (one Hessian-vector product per layer per probe, each only
    through the part of the graph above that layer); otherwise one probe spans all estimated layers
    (one product per probe), which stays unbiased but adds every other layer's Σ_j H_ij z_j to each
    layer's noise. On the demo LeNet (one 32-sample batch, 128 probes, every layer estimated)
    fc3's relative error against the exact diagonal was 0.68 with a shared probe and 0.33 alone,
    which is the floor for that layer (its own off-diagonal entries), for 2.4 s instead of 2.1 s.
    Each estimate's spread (standard error over its probes) is returned with it.
    """
    params = [t.raw_weight() for t in targets]
    exact = [p.numel() <= exact_max_params for p in params]
    keys = {id(p): name for name, p in ctx.model.named_parameters()}
    exact_sums = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    probes = [_ProbeStats(p) for p in params]
    generator = torch.Generator().manual_seed(ctx.seed)
    tracker = ProgressTracker("Hessian diagonal", batches, ctx.progress)
    seen = 0
    with scoring_mode(ctx.model, params):
        for inputs, labels in training_batches(ctx, batches, batch_size):
            for i, p in enumerate(params):
                if exact[i]:
                    exact_sums[i] += exact_diagonal(ctx.model, keys[id(p)], p, inputs, labels,
                                                    ctx.cancel)
            estimated = [i for i in range(len(params)) if not exact[i]]
            grads = torch.autograd.grad(batch_loss(ctx.model, inputs, labels), params,
                                        create_graph=True, allow_unused=True) if estimated else []
            live = [i for i in estimated if grads[i] is not None and grads[i].requires_grad]
            for _ in range(samples if estimated else 0):
                if ctx.cancel is not None:
                    ctx.cancel.raise_if_cancelled()
                zs = [(torch.randint(0, 2, params[i].shape, generator=generator) * 2 - 1)
                      .to(params[i].device, params[i].dtype) for i in live]
                if per_layer:
                    hz = [torch.autograd.grad(grads[i], params[i], grad_outputs=z,
                                              retain_graph=True, allow_unused=True)[0]
                          for i, z in zip(live, zs)]
                else:
                    hz = torch.autograd.grad([grads[i] for i in live], [params[i] for i in live],
                                             grad_outputs=zs, retain_graph=True, allow_unused=True)
                for i, z, h in zip(live, zs, hz):
                    probes[i].add(None if h is None else z * h)
                for i in set(estimated) - set(live):
                    probes[i].add(None)
            seen += 1
            tracker.update(seen, f"batch {seen}/{batches}")
    if seen == 0:
        raise PruneError("the training set is empty; OBD needs training data")
    return [HessianDiagonal(exact_sums[i] / seen, True) if exact[i] else probes[i].estimate()
            for i in range(len(params))]


@CRITERIA.register
class OBDCriterion(Criterion):
    name = "obd"
    label = "Second-order OBD ½·h·w²"
    description = ("Optimal Brain Damage: the loss increase from removing a weight, to second "
                   "order, ½·h_ii·w². The Hessian diagonal h_ii is exact for layers up to "
                   "'exact_max_params' weights and a Hutchinson estimate (random ±1 probes) for "
                   "larger ones; the log says which each layer got. Needs data; the slowest "
                   "criterion.")
    needs_data = True
    options = (
        Option("batches", int, 2, "Training batches k the Hessian diagonal is averaged over.",
               minimum=1, maximum=1000),
        Option("grad_batch_size", int, 32, "Samples per batch when computing the Hessian.",
               minimum=1, maximum=4096),
        Option("exact_max_params", int, 5000, "Layers with at most this many weights get the exact "
               "Hessian diagonal (one Hessian-vector product per weight); larger ones a Hutchinson "
               "estimate.", minimum=0, maximum=1_000_000),
        Option("hutchinson_samples", int, 16, "Random probes per batch for the Hutchinson estimate.",
               minimum=1, maximum=10_000),
        Option("hutchinson_probes", str, "per_layer", "per_layer: each layer is probed alone "
               "through its own Hessian block, so its estimate carries no other layer's noise (one "
               "Hessian-vector product per layer per probe). joint: one probe spans every "
               "estimated layer (one product per probe, cheaper, noisier per layer).",
               choices=("per_layer", "joint")),
    )

    def scores(self, targets: list[PruneTarget], ctx: PruneContext) -> list[torch.Tensor]:
        per_layer = self["hutchinson_probes"] == "per_layer"
        diagonals = hessian_diagonals(targets, ctx, self["batches"], self["grad_batch_size"],
                                      self["exact_max_params"], self["hutchinson_samples"],
                                      per_layer)
        for t, diagonal in zip(targets, diagonals):
            n = t.raw_weight().numel()
            spread = ("" if diagonal.relative_error is None else
                      f", relative standard error {diagonal.relative_error:.3f}")
            ctx.log(f"obd: {t.name} ({n} weights): " + (
                "exact Hessian diagonal" if diagonal.exact else
                f"Hutchinson estimate, {self['hutchinson_samples']} probes per batch "
                f"{'on this layer alone' if per_layer else 'shared by the estimated layers'}"
                f"{spread}"))
        return [0.5 * d.values * t.raw_weight().detach().float() ** 2
                for d, t in zip(diagonals, targets)]

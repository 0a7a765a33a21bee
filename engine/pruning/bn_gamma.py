"""BatchNorm scaling factors γ as channel importance, with the Network Slimming option.

The BN that normalises a layer's output scales each of its channels by γ; a channel with γ ≈ 0
contributes (almost) nothing downstream, so |γ_c| scores the whole output channel c of the layer
before it. Pairs are found with a torch.fx trace (a BN whose input is exactly that layer's output);
models fx cannot trace fall back to registration order (a BN registered right after the layer with
matching channel count), the convention torchvision and most hand-written models follow. The log
says which was used.

Network Slimming (Liu et al., 2017) first trains with an L1 penalty λ·Σ|γ| so unimportant channels'
γ are driven to zero, then prunes by |γ|. With ``slimming_epochs`` > 0 the model is trained in
place before scoring (the paper's procedure), so the pruned model carries the slimmed weights.
"""
from __future__ import annotations

from typing import ClassVar, Optional

import torch
from torch import nn

from engine.metrics import forward_batch, split_batch, to_device
from engine.progress import ProgressTracker
from engine.pruning.base import CRITERIA, Criterion, PruneContext, PruneError
from engine.pruning.targets import PruneTarget
from engine.registry import Option

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def following_batchnorms(model: nn.Module) -> tuple[dict[str, nn.Module], str]:
    """module name -> the BatchNorm applied directly to its output; and how pairs were found."""
    modules = dict(model.named_modules())
    try:
        traced = torch.fx.symbolic_trace(model)
    except Exception:
        traced = None
    pairs: dict[str, nn.Module] = {}
    if traced is not None:
        for node in traced.graph.nodes:
            if node.op == "call_module" and isinstance(modules.get(node.target), _BN):
                source = node.args[0] if node.args else None
                if (getattr(source, "op", None) == "call_module"
                        and isinstance(modules.get(source.target), _LAYERS)):
                    pairs[source.target] = modules[node.target]
        return pairs, "torch.fx trace"
    previous: Optional[tuple[str, nn.Module]] = None
    for name, module in model.named_modules():
        if isinstance(module, _BN) and previous is not None:
            layer_name, layer = previous
            if layer.weight.shape[0] == module.num_features:
                pairs[layer_name] = module
        previous = (name, module) if isinstance(module, _LAYERS) else None
    return pairs, "registration order (the model could not be traced with torch.fx)"


def slim(model: nn.Module, batchnorms: list[nn.Module], ctx: PruneContext, epochs: int,
         l1: float, lr: float, batch_size: int, max_batches: Optional[int]) -> None:
    """Trains the whole model for ``epochs`` with loss + l1·Σ|γ| (SGD, momentum 0.9), in place."""
    if ctx.data is None:
        raise PruneError("Network Slimming trains the model first and needs data")
    loader = ctx.data.loader("train", batch_size, shuffle=True, seed=ctx.seed)
    per_epoch = len(loader) if max_batches is None else min(len(loader), max_batches)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9)
    gammas = [bn.weight for bn in batchnorms]
    tracker = ProgressTracker("Network Slimming", epochs * per_epoch, ctx.progress)
    was_training = model.training
    model.train()
    step = 0
    try:
        for epoch in range(epochs):
            for i, batch in enumerate(loader):
                if i >= per_epoch:
                    break
                if ctx.cancel is not None:
                    ctx.cancel.raise_if_cancelled()
                inputs, labels = split_batch(batch)
                inputs, labels = to_device(inputs, ctx.device), labels.to(ctx.device)
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(forward_batch(model, inputs), labels)
                penalty = sum(g.abs().sum() for g in gammas)
                (loss + l1 * penalty).backward()
                optimizer.step()
                step += 1
                tracker.update(step, f"epoch {epoch + 1}/{epochs}", loss=float(loss.detach()))
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.train(was_training)
    ctx.log(f"network slimming: trained {epochs} epoch(s) with L1 {l1:g} on BN γ; "
            f"Σ|γ| now {float(sum(g.detach().abs().sum() for g in gammas)):.4g}")


@CRITERIA.register
class BNGammaCriterion(Criterion):
    name = "bn_gamma"
    label = "BatchNorm scaling γ (Network Slimming)"
    description = ("Scores each output channel by |γ| of the BatchNorm right after the layer: a "
                   "channel the BN scales to ~0 barely matters. Use with filter granularity on "
                   "layers followed by a BatchNorm. 'slimming_epochs' > 0 first trains with an L1 "
                   "penalty on γ (Network Slimming) so unimportant channels' γ shrink to zero.")
    granularities: ClassVar[Optional[tuple[str, ...]]] = ("filter",)
    options = (
        Option("slimming_epochs", int, 0, "Network Slimming: epochs of training with an L1 "
               "penalty on γ before scoring (0 scores the γ as they are).", minimum=0, maximum=1000),
        Option("slimming_l1", float, 1e-4, "Network Slimming: strength λ of the L1 penalty "
               "λ·Σ|γ|.", minimum=0.0, maximum=1.0),
        Option("slimming_lr", float, 0.01, "Network Slimming: SGD learning rate.", minimum=1e-8,
               maximum=10.0),
        Option("slimming_max_batches", int, 0, "Network Slimming: batches per epoch (0 = all).",
               minimum=0),
    )

    @property
    def needs_data(self) -> bool:  # type: ignore[override]
        return self["slimming_epochs"] > 0

    def scores(self, targets: list[PruneTarget], ctx: PruneContext) -> list[torch.Tensor]:
        pairs, how = following_batchnorms(ctx.model)
        missing = [t.name for t in targets if t.module_name not in pairs or t.param_name != "weight"]
        if missing:
            raise PruneError(f"bn_gamma scores a layer by the BatchNorm that follows it; no "
                             f"BatchNorm follows {', '.join(missing)} (pairs found by {how}). "
                             f"Select only layers followed by a BatchNorm, or use another criterion.")
        ctx.log(f"bn_gamma: layer→BatchNorm pairs found by {how}")
        batchnorms = [pairs[t.module_name] for t in targets]
        no_gamma = [t.name for t, bn in zip(targets, batchnorms) if bn.weight is None]
        if no_gamma:
            raise PruneError(f"the BatchNorm after {', '.join(no_gamma)} has no γ (affine=False); "
                             f"bn_gamma cannot score it")
        if self["slimming_epochs"] > 0:
            slim(ctx.model, batchnorms, ctx, self["slimming_epochs"], self["slimming_l1"],
                 self["slimming_lr"], 64, self["slimming_max_batches"] or None)
        out = []
        for t, bn in zip(targets, batchnorms):
            w = t.raw_weight()
            gamma = bn.weight.detach().abs().float().to(w.device)
            out.append(gamma.reshape(-1, *([1] * (w.dim() - 1))).expand(w.shape).clone())
        return out

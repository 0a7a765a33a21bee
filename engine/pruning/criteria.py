"""Importance criteria that need only the weights."""
from __future__ import annotations

import torch

from engine.pruning.base import CRITERIA, Criterion, PruneContext
from engine.pruning.targets import PruneTarget


@CRITERIA.register
class L1Criterion(Criterion):
    name = "l1"
    label = "L1 magnitude |w|"
    description = ("Prunes the weights with the smallest absolute value. The standard magnitude "
                   "criterion: cheap, needs no data, and works well after training.")

    def scores(self, targets: list[PruneTarget], ctx: PruneContext) -> list[torch.Tensor]:
        return [t.raw_weight().detach().abs() for t in targets]


@CRITERIA.register
class L2Criterion(Criterion):
    name = "l2"
    label = "L2 magnitude w²"
    description = ("Prunes the weights with the smallest square. Same order as L1 for single "
                   "weights; for groups (channels, filters) it is the group's L2 norm, which "
                   "favours groups with a few large weights.")

    def scores(self, targets: list[PruneTarget], ctx: PruneContext) -> list[torch.Tensor]:
        return [t.raw_weight().detach().pow(2) for t in targets]


@CRITERIA.register
class RandomCriterion(Criterion):
    name = "random"
    label = "Random (seeded)"
    description = ("Prunes weights at random, reproducibly from the run's seed. A baseline: any "
                   "criterion worth using should beat it at the same sparsity.")

    def scores(self, targets: list[PruneTarget], ctx: PruneContext) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(ctx.seed)
        return [torch.rand(t.raw_weight().shape, generator=generator).to(t.raw_weight().device)
                for t in targets]

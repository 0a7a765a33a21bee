"""First-order criteria from training data: gradient magnitude and Taylor |w·g|."""
from __future__ import annotations

import torch

from engine.pruning.base import CRITERIA, Criterion, PruneContext
from engine.pruning.gradients import BATCH_SIZE_OPTION, BATCHES_OPTION, accumulate
from engine.pruning.targets import PruneTarget


@CRITERIA.register
class GradientCriterion(Criterion):
    name = "gradient"
    label = "Gradient magnitude |g|"
    description = ("Keeps the weights the loss is most sensitive to: |∂L/∂w| averaged over k "
                   "training batches (magnitudes are averaged, so opposite signs do not cancel). "
                   "Needs data. Ignores how large the weight itself is.")
    needs_data = True
    options = (BATCHES_OPTION, BATCH_SIZE_OPTION)

    def scores(self, targets: list[PruneTarget], ctx: PruneContext) -> list[torch.Tensor]:
        return accumulate(targets, ctx, self["batches"], self["grad_batch_size"],
                          lambda w, g: g.abs(), "Gradient scores")


@CRITERIA.register
class TaylorCriterion(Criterion):
    name = "taylor"
    label = "First-order Taylor |w·g|"
    description = ("Estimates the loss change from removing each weight to first order: |w·∂L/∂w|, "
                   "averaged over k training batches (Molchanov et al.). Needs data. At "
                   "initialisation this is SNIP's connection sensitivity.")
    needs_data = True
    options = (BATCHES_OPTION, BATCH_SIZE_OPTION)

    def scores(self, targets: list[PruneTarget], ctx: PruneContext) -> list[torch.Tensor]:
        return accumulate(targets, ctx, self["batches"], self["grad_batch_size"],
                          lambda w, g: (w * g).abs(), "Taylor scores")

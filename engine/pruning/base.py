"""The parts a pruning run is made of: a criterion scores weights, a granularity decides what is
zeroed together. Both are registry components; see :mod:`engine.registry`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Optional

import torch
from torch import nn

from engine.progress import CancelToken, ProgressFn
from engine.pruning.targets import PruneTarget
from engine.pruning.threshold import count_for_fraction, lowest_k_mask
from engine.registry import Component, Registry


class PruneError(ValueError):
    """A pruning request that cannot be carried out; the message says why."""


@dataclass
class PruneContext:
    """What a criterion may need beyond the weights: data for gradient-based scores, a seed."""
    model: nn.Module
    seed: int = 0
    data: Optional[object] = None            # engine.data.sources.DataBundle
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: Optional[ProgressFn] = None
    cancel: Optional[CancelToken] = None
    log: Callable[[str], None] = lambda _msg: None


class Criterion(Component):
    """Scores every weight of every target; higher means more important (kept longer).

    ``granularities`` restricts the granularities it makes sense with (None: all). A criterion with
    ``provides_masks`` (a user's BasePruningMethod) makes the masks itself through
    ``masks(targets, sparsities, ctx)`` instead of scoring."""
    needs_data: ClassVar[bool] = False
    granularities: ClassVar[Optional[tuple[str, ...]]] = None
    provides_masks: ClassVar[bool] = False

    def scores(self, targets: list[PruneTarget], ctx: PruneContext) -> list[torch.Tensor]:
        raise NotImplementedError


class Granularity(Component):
    """Decides which weights are zeroed together. The default is single weights (fine-grained);
    structured granularities reduce scores over groups and expand the kept groups back to a mask."""
    supports_global: ClassVar[bool] = True
    fixed_sparsity: ClassVar[bool] = False   # N:M sets its own sparsity (1 - N/M)

    def check(self, target: PruneTarget) -> None:
        """Raise PruneError where this granularity makes no sense for the parameter."""

    def shortfall(self, shape: torch.Size) -> Optional[str]:
        """For a fixed-sparsity granularity: why a weight of this shape gets less than the fixed
        sparsity (a dimension too narrow for the group), or None when it gets all of it."""
        return None

    def group_scores(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.reshape(-1)

    def expand(self, pruned_groups: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        return pruned_groups.reshape(shape)

    def local_mask(self, scores: torch.Tensor, sparsity: float) -> torch.Tensor:
        """Float 0/1 mask pruning ``sparsity`` of this tensor's groups."""
        groups = self.group_scores(scores)
        pruned = lowest_k_mask(groups, count_for_fraction(groups.numel(), sparsity))
        return (~self.expand(pruned, scores.shape)).to(torch.float32)


CRITERIA: Registry[Criterion] = Registry("criterion")
GRANULARITIES: Registry[Granularity] = Registry("granularity")

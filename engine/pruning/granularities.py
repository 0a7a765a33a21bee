"""Granularities: what a mask zeroes together.

Every structured granularity views a weight's scores as a 2-D ``(groups, group_size)`` matrix,
reduces each row to one group score, and expands pruned groups back to the weight's shape. Group
scores are the *mean per element*: within one layer this ranks groups exactly like the sum (every
group has the same size), and across layers (global scope) it keeps a 150-weight conv filter and a
256-weight linear row comparable instead of always pruning the smaller groups first. Weights that an
earlier round already pruned score ``-inf`` (see ``apply._respect_existing_mask``); they count as
zero importance inside a group, and a group that is entirely pruned scores ``-inf`` so it is counted
first and never revived.

Which parameters each one applies to (dimension 0 is always the output side in PyTorch weights):

============  ================================  ===========================================
granularity   conv (out, in, k...)              2-D: Linear (out, in), LSTM (4H, in|H),
                                                Embedding (vocab, dim)
============  ================================  ===========================================
fine          any weight                        any weight
nm            M consecutive input channels at   M consecutive inputs of each row
              every (filter, kernel position)   (Embedding: M consecutive dims of a token)
vector        kernel rows (last dim) or         whole rows or whole columns
              kernel columns (second to last)
kernel        one k×k kernel (out, in pair)     -- (no kernel: clear error)
channel       one input channel, all filters    one input column (Embedding: one dimension)
filter        one output channel                one output row (Embedding: one token)
============  ================================  ===========================================
"""
from __future__ import annotations

from typing import ClassVar

import torch

from engine.pruning.base import GRANULARITIES, Granularity, PruneError
from engine.pruning.targets import PruneTarget
from engine.registry import Option


def _mean_finite(groups: torch.Tensor) -> torch.Tensor:
    """Mean per element of each row, already-pruned (-inf) entries counting as zero; rows that are
    entirely pruned stay -inf."""
    finite = torch.isfinite(groups)
    values = torch.where(finite, groups.float(), torch.zeros((), dtype=torch.float32))
    means = values.sum(dim=1) / groups.shape[1]
    return torch.where(finite.any(dim=1), means, torch.full_like(means, float("-inf")))


def _shape_text(target: PruneTarget) -> str:
    shape = tuple(target.raw_weight().shape)
    return f"{target.name} ({target.module_type} weight of shape {shape})"


class GroupGranularity(Granularity):
    """A granularity whose groups are obtained by moving the reduced dimensions last."""
    # dims (counted on the weight) that make up one group; subclasses set it per shape
    def group_dims(self, shape: torch.Size) -> tuple[int, ...]:
        raise NotImplementedError

    def _perm(self, shape: torch.Size) -> tuple[list[int], list[int]]:
        inside = [d % len(shape) for d in self.group_dims(shape)]
        outside = [d for d in range(len(shape)) if d not in inside]
        return outside, inside

    def group_scores(self, scores: torch.Tensor) -> torch.Tensor:
        outside, inside = self._perm(scores.shape)
        group_size = 1
        for d in inside:
            group_size *= scores.shape[d]
        return _mean_finite(scores.permute(*outside, *inside).reshape(-1, group_size))

    def expand(self, pruned_groups: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        outside, inside = self._perm(shape)
        view = [shape[d] if d in outside else 1 for d in range(len(shape))]
        return pruned_groups.reshape(view).expand(shape).clone()


@GRANULARITIES.register
class FineGranularity(Granularity):
    name = "fine"
    label = "Fine-grained (single weights)"
    description = ("Zeroes individual weights anywhere in the tensor. Keeps the most accuracy for a "
                   "given sparsity, but the tensor keeps its shape: the file and the MACs only "
                   "shrink with sparse storage or sparse kernels.")


@GRANULARITIES.register
class VectorGranularity(GroupGranularity):
    name = "vector"
    label = "Vector (rows or columns)"
    description = ("Zeroes whole vectors. Linear/LSTM/Embedding: 'rows' zeroes a whole row (all "
                   "inputs of one output unit; one token of an embedding), 'columns' a whole column "
                   "(one input across all outputs). Convolutions: 'rows' zeroes one row of a k×k "
                   "kernel, 'columns' one column of it (the tutorial's vector level). Sparsity is "
                   "the fraction of vectors zeroed.")
    options = (Option("axis", str, "rows", "Which vectors are zeroed together: rows (along the "
                      "last dimension) or columns (along the one before it).",
                      choices=("rows", "columns")),)

    def group_dims(self, shape):
        return (-1,) if self["axis"] == "rows" else (-2,)


@GRANULARITIES.register
class KernelGranularity(GroupGranularity):
    name = "kernel"
    label = "Kernel (one k×k kernel)"
    description = ("Zeroes whole convolution kernels: the k×k (or k) weights connecting one input "
                   "channel to one output channel. Convolutions only.")

    def check(self, target: PruneTarget) -> None:
        if target.raw_weight().dim() < 3:
            raise PruneError(f"kernel granularity needs a convolution weight (out, in, k...); "
                             f"{_shape_text(target)} has no kernels. Use filter, channel, vector or "
                             f"fine for it, or exclude it.")

    def group_dims(self, shape):
        return tuple(range(2, len(shape)))


@GRANULARITIES.register
class ChannelGranularity(GroupGranularity):
    name = "channel"
    label = "Channel (one input channel)"
    description = ("Zeroes one input channel across all filters (dimension 1: a conv input "
                   "channel, a Linear/LSTM input feature, an Embedding dimension). Structured: the "
                   "previous layer's matching output could be removed physically.")

    def group_dims(self, shape):
        return tuple(d for d in range(len(shape)) if d != 1)


@GRANULARITIES.register
class FilterGranularity(GroupGranularity):
    name = "filter"
    label = "Filter (one output channel)"
    description = ("Zeroes whole output channels (dimension 0: a conv filter, a Linear/LSTM output "
                   "row, an Embedding token). Structured: the output channel and everything that "
                   "reads it could be removed, which really cuts MACs. Pairs with the BN γ "
                   "criterion.")

    def group_dims(self, shape):
        return tuple(range(1, len(shape)))


@GRANULARITIES.register
class NMGranularity(Granularity):
    name = "nm"
    label = "N:M semi-structured"
    description = ("In every M consecutive weights along the input dimension keep the N largest "
                   "(2:4 is what NVIDIA Ampere+ sparse tensor cores accelerate). Linear/LSTM/"
                   "Embedding: consecutive inputs of each row. Convolutions: by default M "
                   "consecutive input channels at each (filter, kernel position), as NVIDIA's ASP "
                   "does for tensor cores; 'flattened' groups the row in×k×k instead. A dimension "
                   "that is not a multiple of M is padded: a short last group keeps min(N, its "
                   "size). Sparsity is fixed at 1 − N/M, so the sparsity setting is not used and "
                   "scope must be local.")
    supports_global: ClassVar[bool] = False
    fixed_sparsity: ClassVar[bool] = True
    options = (
        Option("n", int, 2, "N: weights kept in every group of M.", minimum=1),
        Option("m", int, 4, "M: size of each group of consecutive weights.", minimum=2),
        Option("conv_layout", str, "channels", "Convolutions only: group M consecutive input "
               "channels (NVIDIA ASP layout) or M consecutive entries of the flattened in×k×k row.",
               choices=("channels", "flattened")),
    )

    def __init__(self, **values):
        super().__init__(**values)
        if not self["n"] < self["m"]:
            raise PruneError(f"N:M needs N < M; got {self['n']}:{self['m']}")

    @property
    def sparsity(self) -> float:
        return 1.0 - self["n"] / self["m"]

    def _rows(self, scores: torch.Tensor) -> torch.Tensor:
        """(rows, length) view whose rows are grouped along the last dimension."""
        if scores.dim() >= 3 and self["conv_layout"] == "channels":
            # (out, in, k...) -> (out, k..., in): M consecutive input channels per kernel position
            return scores.movedim(1, -1).reshape(-1, scores.shape[1])
        return scores.reshape(scores.shape[0], -1)

    def _unrows(self, rows: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        if len(shape) >= 3 and self["conv_layout"] == "channels":
            moved = (shape[0], *shape[2:], shape[1])
            return rows.reshape(moved).movedim(-1, 1)
        return rows.reshape(shape)

    def shortfall(self, shape: torch.Size) -> str | None:
        n, m = self["n"], self["m"]
        by_channel = len(shape) >= 3 and self["conv_layout"] == "channels"
        length = shape[1] if by_channel else shape[1:].numel()
        full, rest = divmod(length, m)
        if rest == 0:
            return None
        kept_there = min(n, rest)   # a short last group keeps at most all of itself
        what = (f"{length} input channel{'s' if length != 1 else ''}" if by_channel
                else f"{length} input{'s' if length != 1 else ''} per row")
        if full == 0:
            return (f"{what} per group of {m}: the group keeps min({n}, {rest}) = {kept_there}")
        return (f"{what}: {full} full group{'s' if full != 1 else ''} of {m}, and the last "
                f"group of {rest} keeps min({n}, {rest}) = {kept_there}")

    def local_mask(self, scores: torch.Tensor, sparsity: float) -> torch.Tensor:
        n, m = self["n"], self["m"]
        rows = self._rows(scores.float())
        length = rows.shape[1]
        pad = (-length) % m
        # padding scores -inf; a stable descending sort puts real slots (earlier in the row) before
        # padding even when an already-pruned real weight also scores -inf
        padded = torch.nn.functional.pad(rows, (0, pad), value=float("-inf"))
        real = torch.nn.functional.pad(torch.ones_like(rows, dtype=torch.bool), (0, pad), value=False)
        groups = padded.reshape(rows.shape[0], -1, m)
        real = real.reshape(groups.shape)
        order = torch.argsort(groups, dim=-1, descending=True, stable=True)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(-1, order[..., :n], True)
        keep &= real
        keep = keep.reshape(rows.shape[0], -1)[:, :length]
        return self._unrows(keep, scores.shape).to(torch.float32)

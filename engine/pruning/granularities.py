"""Granularities: what a mask zeroes together."""
from __future__ import annotations

from engine.pruning.base import GRANULARITIES, Granularity


@GRANULARITIES.register
class FineGranularity(Granularity):
    name = "fine"
    label = "Fine-grained (single weights)"
    description = ("Zeroes individual weights anywhere in the tensor. Keeps the most accuracy for a "
                   "given sparsity, but the tensor keeps its shape: the file and the MACs only "
                   "shrink with sparse storage or sparse kernels.")

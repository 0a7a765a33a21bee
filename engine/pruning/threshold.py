"""Choosing exactly k lowest-scoring entries with one ``kthvalue`` instead of a full sort."""
from __future__ import annotations

import torch


def lowest_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask (same shape as ``scores``) that is True for the k lowest scores.

    One ``kthvalue`` finds the threshold; everything strictly below it is selected and ties at the
    threshold are taken in flattened order until exactly k are selected, so the pruned count is
    always exactly what was asked for, like torch.nn.utils.prune.
    """
    flat = scores.reshape(-1)
    n = flat.numel()
    if k <= 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    if k >= n:
        return torch.ones_like(scores, dtype=torch.bool)
    threshold = torch.kthvalue(flat.float() if flat.dtype in (torch.float16, torch.bfloat16) else flat,
                               k).values
    selected = flat < threshold
    missing = k - int(selected.sum())
    if missing > 0:
        tied = torch.nonzero(flat == threshold, as_tuple=True)[0][:missing]
        selected[tied] = True
    return selected.view_as(scores)


def count_for_fraction(n: int, fraction: float) -> int:
    """Number of entries a fraction of n means, rounded like torch.nn.utils.prune."""
    return int(round(fraction * n))

"""Choosing exactly k lowest-scoring entries with one ``kthvalue`` instead of a full sort.

Shared by every criterion and granularity (and by the torch-compatible helpers in
:mod:`engine.pruning.masks`), so all of them get the same exact count and the same tie rule.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from engine.counting import count_nonzero
from engine.progress import CancelToken, check_stop as _check

# ``cancel`` is checked between the whole-tensor steps below: over a global ranking of a
# ResNet-50's 25M scores each step takes a few tenths of a second, all of them several seconds.


def lowest_k_mask(scores: torch.Tensor, k: int,
                  cancel: Optional[CancelToken] = None) -> torch.Tensor:
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
    if flat.dtype in (torch.float16, torch.bfloat16):
        flat = flat.float()
    threshold, n_at_most = kth_smallest(flat, k, cancel)
    _check(cancel)
    if torch.isnan(threshold):  # NaN scores rank last, as kthvalue and topk rank them
        tied = torch.isnan(flat)
        selected = ~tied
    elif n_at_most == k:
        return (flat <= threshold).view_as(scores)
    else:
        selected = flat < threshold
        tied = flat == threshold
    _check(cancel)
    # a boolean count, not a sum (which took 0.22 s over BERT-base's 86M scores)
    _take_first(selected, tied, k - count_nonzero(selected), cancel)
    return selected.view_as(scores)


# ties are taken this many scores at a time (a few milliseconds each)
_TIES_PIECE = 1 << 22


def _take_first(selected: torch.Tensor, tied: torch.Tensor, wanted: int,
                cancel: Optional[CancelToken] = None) -> None:
    """Selects the first ``wanted`` of the ``tied`` entries, in flattened order, a piece at a
    time: counting each piece's ties and taking whole pieces while they fit. Ties can be tens
    of millions (a second round over a pruned model: every pruned weight scores -inf), and
    listing their indices and writing them one by one took 0.8 s at BERT-base size, with no
    point at which a Stop was heard."""
    for start in range(0, tied.numel(), _TIES_PIECE):
        if wanted <= 0:
            return
        _check(cancel)
        piece = tied[start:start + _TIES_PIECE]
        count = count_nonzero(piece)
        if count <= wanted:
            selected[start:start + _TIES_PIECE] |= piece
            wanted -= count
        else:
            first = torch.nonzero(piece, as_tuple=True)[0][:wanted]
            selected[start:start + _TIES_PIECE][first] = True
            return


def count_for_fraction(n: int, fraction: float) -> int:
    """Number of entries a fraction of n means, rounded like torch.nn.utils.prune."""
    return int(round(fraction * n))


# Below this size a plain kthvalue is as fast as narrowing the candidates first.
_BRACKET_MIN_NUMEL = 1 << 20
_SAMPLE_SIZE = 1 << 16


def kth_smallest(scores: Tensor, k: int,
                 cancel: Optional[CancelToken] = None) -> tuple[Tensor, int]:
    """The k-th smallest score (1-based, NaN ranked last) and how many rank <= it."""
    if scores.numel() >= _BRACKET_MIN_NUMEL:
        found = _kth_smallest_in_bracket(scores, k, cancel)
        if found is not None:
            return found
        _check(cancel)
    threshold = torch.kthvalue(scores, k).values
    if torch.isnan(threshold):
        return threshold, scores.numel()
    return threshold, int(torch.count_nonzero(scores <= threshold))


def _kth_smallest_in_bracket(scores: Tensor, k: int,
                             cancel: Optional[CancelToken] = None) -> tuple[Tensor, int] | None:
    """``_kth_smallest`` with ``kthvalue`` run on a small slice; None if that fails.

    ``kthvalue`` copies its whole input plus an int64 index per element before
    selecting, which makes it most of the cost on a model with millions of weights.
    So the k-th value is first bracketed by quantiles of a strided sample, and the one
    ``kthvalue`` call runs only on the few scores inside the bracket. Counting the
    scores below the bracket keeps the answer exact; when the sample misleads (the
    k-th value lies outside the bracket) the caller falls back to the full
    ``kthvalue``, so the sample can only change the speed, never the result.
    """
    n = scores.numel()
    # A deterministic stride rather than a random sample: no RNG state is touched.
    sample = torch.sort(scores[:: n // _SAMPLE_SIZE]).values
    s = sample.numel()
    q = k / n
    # Six standard deviations of the sample quantile's rank, plus slack for
    # quantiles near 0 or 1 where that is tiny.
    margin = int(6.0 * (s * q * (1.0 - q)) ** 0.5) + 32
    lo = sample[max(0, int(q * s) - margin)]
    hi = sample[min(s - 1, int(q * s) + margin)]
    if torch.isnan(hi):
        # Every comparison with NaN is false, which would break the bracket below.
        return None
    _check(cancel)
    below = scores < lo
    n_below = int(torch.count_nonzero(below))
    _check(cancel)
    # Scores < lo are also <= hi, so the xor leaves exactly lo <= score <= hi.
    candidates = scores[torch.logical_xor(scores <= hi, below)]
    if not n_below < k <= n_below + candidates.numel():
        return None
    _check(cancel)
    threshold = torch.kthvalue(candidates, k - n_below).values
    return threshold, n_below + int(torch.count_nonzero(candidates <= threshold))

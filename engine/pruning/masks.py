"""Magnitude pruning masks in the ``torch.nn.utils.prune`` format, without sorting.

``prune.L1Unstructured`` ranks weights with ``torch.topk`` over every candidate, a
partial sort of millions of values that dominates the time of
``prune.global_unstructured`` on a real network. Deciding which weights go needs only
one number, the k-th smallest importance, so we find it with one ``torch.kthvalue``
(a selection, linear time) and build every mask with comparisons.

The semantics follow torch's so that a mask from here can replace one from there:

* ``amount`` is a fraction (float) or a count (int) of the weights *not yet pruned*,
  which is what ``PruningContainer`` does for unstructured methods;
* weights already pruned stay pruned;
* exactly ``count_to_prune(...)`` new weights are pruned, even with ties at the
  threshold;
* masks are installed with ``prune.custom_from_mask``, so a module ends up with
  ``<name>_orig``, ``<name>_mask`` and a forward pre-hook like after torch's own
  functions, and ``prune.remove`` or further torch pruning keep working.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import prune

from engine.pruning.threshold import kth_smallest

Amount = int | float
ParamRef = tuple[nn.Module, str]

__all__ = [
    "importance",
    "count_to_prune",
    "local_magnitude_mask",
    "global_magnitude_masks",
    "install_masks",
    "global_magnitude_prune",
    "local_magnitude_prune",
]


def importance(t: Tensor, p: int = 1) -> Tensor:
    """Per-element magnitude score: ``|w|`` for ``p=1``, ``w**2`` for ``p=2``.

    Both rank single weights the same way (except squares that underflow to 0 and
    then tie); ``p=2`` is there for callers that sum scores into L2 group norms.
    """
    _check_p(p)
    t = t.detach()
    return t.abs() if p == 1 else t.square()


def count_to_prune(n: int, amount: Amount) -> int:
    """Number of weights to prune out of ``n`` candidates, as torch counts it.

    A float in ``[0, 1]`` is a fraction rounded with Python's ``round`` (half to even),
    like ``prune._compute_nparams_toprune``; an int is an absolute count and must not
    exceed ``n``. The check is done here, before any mask is installed, so that a bad
    amount cannot leave a model half pruned.
    """
    # bool is an Integral: True would silently mean "prune one weight".
    if isinstance(amount, bool) or not isinstance(amount, numbers.Real):
        raise TypeError(
            f"amount must be an int (a count) or a float in [0, 1] (a fraction), "
            f"got {amount!r} of type {type(amount).__name__}"
        )
    if isinstance(amount, numbers.Integral):
        if amount < 0:
            raise ValueError(f"amount={amount} is a count and must not be negative")
        if amount > n:
            raise ValueError(
                f"amount={amount} is more than the {n} weights that can still be pruned"
            )
        return int(amount)
    # Written so that NaN fails too.
    if not 0.0 <= float(amount) <= 1.0:
        raise ValueError(f"amount={amount} is a fraction and must lie in [0, 1]")
    return round(float(amount) * n)


def global_magnitude_masks(
    tensors: Sequence[Tensor],
    amount: Amount,
    p: int = 1,
    existing_masks: Sequence[Tensor | None] | None = None,
) -> list[Tensor]:
    """Masks pruning the smallest-magnitude weights across all ``tensors`` together.

    Equivalent to the masks ``prune.global_unstructured(..., prune.L1Unstructured,
    amount=amount)`` installs: ``amount`` applies to the weights still unpruned in
    ``existing_masks`` (``None`` entries mean "not pruned yet"), and the returned masks
    already include the old zeros. Among weights tied at the threshold the first ones
    in flattened order are pruned; torch's ``topk`` picks an unspecified subset there,
    so only the count, not the choice, can match on exact ties.

    Returns one mask per tensor, 0/1 in the tensor's dtype and shape, on its device.
    Tensors of the common dtype get views into one flat mask.
    """
    _check_p(p)
    tensors = list(tensors)
    if not tensors:
        return []
    olds = [None] * len(tensors) if existing_masks is None else list(existing_masks)
    if len(olds) != len(tensors):
        raise ValueError(f"{len(olds)} existing masks for {len(tensors)} tensors")
    device = tensors[0].device
    if any(t.device != device for t in tensors):
        raise ValueError("global pruning needs all tensors on one device")

    # One preallocated buffer filled segment by segment: scores land in place instead
    # of being built per tensor and then copied again by torch.cat.
    sizes = [t.numel() for t in tensors]
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
    scores = torch.empty(sum(sizes), dtype=dtype, device=device)
    n_pruned = 0
    start = 0
    for t, old, size in zip(tensors, olds, sizes):
        seg = scores[start : start + size]
        flat = t.detach().reshape(-1)
        if flat.dtype == dtype:
            # Written straight into the buffer: one pass instead of copy + in-place op.
            if p == 1:
                torch.abs(flat, out=seg)
            else:
                torch.square(flat, out=seg)
        else:
            seg.copy_(flat)
            if p == 1:
                seg.abs_()
            else:
                seg.square_()
        if old is not None:
            if old.shape != t.shape:
                raise ValueError(
                    f"mask shape {tuple(old.shape)} != tensor shape {tuple(t.shape)}"
                )
            # -inf ranks pruned weights below every real score, so they fill the
            # bottom of the order and a single threshold covers old and new zeros.
            gone = old.detach().reshape(-1) != 1
            seg.masked_fill_(gone, float("-inf"))
            n_pruned += int(gone.sum())
        start += size

    k = n_pruned + count_to_prune(scores.numel() - n_pruned, amount)
    # The masks are views into one flat mask, as those prune.global_unstructured
    # installs are: no per-tensor copies.
    flat_mask = _keep_mask_(scores, k)
    masks = []
    start = 0
    for t, size in zip(tensors, sizes):
        masks.append(flat_mask[start : start + size].view(t.shape).to(t.dtype))
        start += size
    return masks


def local_magnitude_mask(
    t: Tensor, amount: Amount, p: int = 1, existing_mask: Tensor | None = None
) -> Tensor:
    """Mask pruning the smallest-magnitude weights of one tensor.

    Same as ``prune.l1_unstructured`` computes, including iterative pruning on top of
    ``existing_mask``; see ``global_magnitude_masks`` for the rules.
    """
    return global_magnitude_masks([t], amount, p, [existing_mask])[0]


def install_masks(pairs: Sequence[ParamRef], masks: Sequence[Tensor]) -> None:
    """Install one mask per ``(module, param_name)`` with ``prune.custom_from_mask``.

    Going through torch's own entry point is what makes the result indistinguishable
    from torch pruning: ``<name>_orig`` / ``<name>_mask``, the forward pre-hook, and,
    on an already pruned parameter, a ``PruningContainer`` that multiplies the new
    mask into the old one (a no-op for masks from this module, which include it).
    """
    pairs = list(pairs)
    masks = list(masks)
    if len(pairs) != len(masks):
        raise ValueError(f"{len(masks)} masks for {len(pairs)} parameters")
    for (module, name), mask in zip(pairs, masks):
        prune.custom_from_mask(module, name, mask)


def global_magnitude_prune(pairs: Sequence[ParamRef], amount: Amount, p: int = 1) -> None:
    """Prune ``amount`` of the still unpruned weights of ``pairs`` by global magnitude.

    A fast drop-in for ``prune.global_unstructured(pairs, prune.L1Unstructured,
    amount=amount)``.
    """
    pairs = list(pairs)
    current = [_current(module, name) for module, name in pairs]
    masks = global_magnitude_masks(
        [t for t, _ in current], amount, p, [old for _, old in current]
    )
    install_masks(pairs, masks)


def local_magnitude_prune(
    pairs: Sequence[ParamRef],
    amount_or_dict: Amount | Mapping[ParamRef, Amount],
    p: int = 1,
) -> None:
    """Prune each parameter of ``pairs`` on its own, like ``prune.l1_unstructured``.

    ``amount_or_dict`` is one amount for every parameter or a mapping from each
    ``(module, param_name)`` in ``pairs`` to its own amount. All masks are computed
    before any is installed, so a bad amount leaves the model untouched.
    """
    pairs = list(pairs)
    if isinstance(amount_or_dict, Mapping):
        missing = [name for module, name in pairs if (module, name) not in amount_or_dict]
        if missing:
            raise KeyError(f"no amount given for parameters named {missing}")
        amounts = [amount_or_dict[pair] for pair in pairs]
    else:
        amounts = [amount_or_dict] * len(pairs)
    masks = []
    for (module, name), amount in zip(pairs, amounts):
        t, old = _current(module, name)
        masks.append(local_magnitude_mask(t, amount, p, old))
    install_masks(pairs, masks)


def _keep_mask_(scores: Tensor, k: int) -> Tensor:
    """Turn ``scores`` in place into a 0/1 mask dropping exactly its ``k`` smallest.

    In place because the scores are not needed afterwards and reusing their buffer
    saves allocating (and page-faulting) another model-sized tensor.
    """
    if k == 0:
        return scores.fill_(1)
    threshold, n_at_most = kth_smallest(scores, k)
    # n_at_most >= k; more than k means ties at the threshold, and the last of them
    # in flattened order are kept so that exactly k are pruned. Found before the
    # scores are overwritten.
    extra = n_at_most - k
    if torch.isnan(threshold):
        # Like topk, kthvalue ranks NaN above everything: a NaN threshold means all
        # real scores go and the NaNs are the ties to break.
        tied = torch.nonzero(torch.isnan(scores)).squeeze(1)
        scores.zero_()
    else:
        tied = torch.nonzero(scores == threshold).squeeze(1) if extra > 0 else None
        # keep = 1 - (score <= threshold): unlike `score > threshold` this keeps NaNs,
        # which rank above any threshold, and a float result is several times faster
        # to produce than a bool one that would then need converting.
        torch.le(scores, threshold, out=scores).neg_().add_(1)
    if extra > 0:
        scores[tied[tied.numel() - extra :]] = 1
    return scores


def _current(module: nn.Module, name: str) -> tuple[Tensor, Tensor | None]:
    # torch ranks the parameter as the module exposes it (orig * mask) and reads the
    # mask buffer if there is one; reading the same tensors keeps results identical.
    return getattr(module, name), getattr(module, name + "_mask", None)


def _check_p(p: int) -> None:
    if p not in (1, 2):
        raise ValueError(f"p={p!r}: only p=1 (|w|) and p=2 (w**2) are supported")

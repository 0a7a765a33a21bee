"""engine.pruning.masks must give exactly what torch.nn.utils.prune gives, faster.

Random normal weights have no exact ties, so there the masks are compared element for
element with torch's; on tensors built with ties only the count and the ordering rule
can be checked, because torch's topk picks an unspecified subset of tied weights.
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

from engine.pruning import masks as M


def _linears(seed: int, shapes: list[tuple[int, int]]) -> list[nn.Linear]:
    torch.manual_seed(seed)
    return [nn.Linear(i, o) for o, i in shapes]


def _pairs(modules: list[nn.Module]) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in modules]


def _n_zeros(masks) -> int:
    return sum(int((m == 0).sum()) for m in masks)


# --- count_to_prune -------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 5, 7, 10, 999, 12345])
@pytest.mark.parametrize("amount", [0.0, 0.1, 0.25, 0.5, 0.7, 1 / 3, 1.0, 0, 1, 5])
def test_count_to_prune_matches_torch(n, amount):
    if isinstance(amount, int) and amount > n:
        with pytest.raises(ValueError):
            M.count_to_prune(n, amount)
        return
    assert M.count_to_prune(n, amount) == prune._compute_nparams_toprune(amount, n)


def test_count_to_prune_rounds_half_to_even_like_torch():
    # 0.5 * 5 = 2.5 -> 2, 0.5 * 7 = 3.5 -> 4 (Python round, as torch uses).
    assert M.count_to_prune(5, 0.5) == 2
    assert M.count_to_prune(7, 0.5) == 4


@pytest.mark.parametrize("amount", [-1, -0.1, 1.5, 2.0, float("nan"), float("inf"), 11])
def test_bad_amounts_raise_value_error(amount):
    with pytest.raises(ValueError, match="amount"):
        M.count_to_prune(10, amount)
    with pytest.raises(ValueError, match="amount"):
        M.local_magnitude_mask(torch.randn(10), amount)
    with pytest.raises(ValueError, match="amount"):
        M.global_magnitude_masks([torch.randn(4), torch.randn(6)], amount)


@pytest.mark.parametrize("amount", ["0.5", None, True])
def test_non_numeric_amounts_raise_type_error(amount):
    with pytest.raises(TypeError, match="amount"):
        M.count_to_prune(10, amount)


def test_int_amount_counts_only_unpruned_weights():
    t = torch.randn(10)
    old = M.local_magnitude_mask(t, 6)
    with pytest.raises(ValueError):
        M.local_magnitude_mask(t, 5, existing_mask=old)
    assert _n_zeros([M.local_magnitude_mask(t, 4, existing_mask=old)]) == 10


def test_bad_p_raises():
    with pytest.raises(ValueError, match="p="):
        M.importance(torch.randn(3), p=3)
    with pytest.raises(ValueError, match="p="):
        M.local_magnitude_mask(torch.randn(3), 0.5, p=0)


# --- equality with torch on random weights --------------------------------------------


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 0.9, 1.0, 0, 1, 17, 200])
def test_local_mask_matches_l1_unstructured(amount):
    torch.manual_seed(0)
    ref = nn.Conv2d(3, 8, 3)  # 216 weights
    ours = copy.deepcopy(ref)
    prune.l1_unstructured(ref, "weight", amount)
    mask = M.local_magnitude_mask(ours.weight, amount)
    assert mask.dtype == ref.weight_mask.dtype and mask.shape == ref.weight.shape
    assert torch.equal(mask, ref.weight_mask)
    assert _n_zeros([mask]) == M.count_to_prune(216, amount)


@pytest.mark.parametrize("amount", [0.2, 0.5, 0.77, 1000, 0])
def test_global_prune_matches_global_unstructured(amount):
    ref = _linears(1, [(30, 20), (7, 30), (50, 7), (3, 50)])
    ours = copy.deepcopy(ref)
    prune.global_unstructured(_pairs(ref), pruning_method=prune.L1Unstructured, amount=amount)
    M.global_magnitude_prune(_pairs(ours), amount)
    for r, o in zip(ref, ours):
        assert torch.equal(r.weight_mask, o.weight_mask)
        assert torch.equal(r.weight, o.weight)
    total = sum(m.weight.numel() for m in ours)
    assert _n_zeros([m.weight_mask for m in ours]) == M.count_to_prune(total, amount)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shapes=st.lists(st.tuples(st.integers(1, 24), st.integers(1, 24)), min_size=1, max_size=4),
    fraction=st.floats(0.0, 1.0),
    as_count=st.booleans(),
)
def test_property_matches_torch_local_and_global(seed, shapes, fraction, as_count):
    ref = _linears(seed, shapes)
    ours = copy.deepcopy(ref)
    total = sum(o * i for o, i in shapes)
    amount = round(fraction * total) if as_count else fraction

    prune.global_unstructured(_pairs(ref), pruning_method=prune.L1Unstructured, amount=amount)
    masks = M.global_magnitude_masks([m.weight for m in ours], amount)
    assert _n_zeros(masks) == M.count_to_prune(total, amount)
    for r, mask in zip(ref, masks):
        assert torch.equal(r.weight_mask, mask)

    first = ours[0].weight
    local_amount = min(amount, first.numel()) if as_count else fraction
    local_ref = prune.l1_unstructured(copy.deepcopy(ours[0]), "weight", local_amount)
    assert torch.equal(local_ref.weight_mask, M.local_magnitude_mask(first, local_amount))


def test_large_tensor_matches_torch_and_keeps_rng_untouched():
    # Above the size where the threshold is bracketed by a sample first.
    torch.manual_seed(3)
    t = torch.randn(1100, 1000)
    k = M.count_to_prune(t.numel(), 0.6)
    expected = torch.ones_like(t)
    expected.view(-1)[torch.topk(t.abs().view(-1), k, largest=False).indices] = 0
    state = torch.get_rng_state()
    mask = M.local_magnitude_mask(t, 0.6)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(mask, expected)


def test_large_tensor_where_the_sample_misleads_is_still_exact():
    # Every 32nd weight (the strided sample) is 0, the rest are large, so the sample
    # brackets the wrong value; the full-kthvalue fallback must take over.
    n = 1 << 21
    t = torch.randn(n, generator=torch.Generator().manual_seed(0)).abs() + 1.0
    t[:: n // (1 << 16)] = 0.0
    k = n // 2
    mask = M.local_magnitude_mask(t, k)
    order = torch.sort(t, stable=True).indices
    expected = torch.ones_like(t)
    expected[order[:k]] = 0
    assert torch.equal(mask, expected)


def test_float64_and_dtype_of_masks():
    t = torch.randn(5, 5, dtype=torch.float64)
    mask = M.local_magnitude_mask(t, 0.4)
    assert mask.dtype == torch.float64
    masks = M.global_magnitude_masks([t, torch.randn(3)], 0.4)
    assert [m.dtype for m in masks] == [torch.float64, torch.float32]
    assert _n_zeros(masks) == M.count_to_prune(28, 0.4)


# --- L2 ---------------------------------------------------------------------------------


def test_importance():
    t = torch.tensor([-3.0, 0.5, 2.0])
    assert torch.equal(M.importance(t, 1), torch.tensor([3.0, 0.5, 2.0]))
    assert torch.equal(M.importance(t, 2), torch.tensor([9.0, 0.25, 4.0]))


def test_l2_prunes_smallest_squares_and_ranks_like_l1():
    torch.manual_seed(4)
    tensors = [torch.randn(20, 10), torch.randn(33)]
    for amount in (0.25, 0.5, 100):
        l2 = M.global_magnitude_masks(tensors, amount, p=2)
        assert _n_zeros(l2) == M.count_to_prune(233, amount)
        squares = torch.cat([t.reshape(-1) ** 2 for t in tensors])
        flat = torch.cat([m.reshape(-1) for m in l2])
        assert squares[flat == 0].max() <= squares[flat == 1].min()
        for a, b in zip(l2, M.global_magnitude_masks(tensors, amount, p=1)):
            assert torch.equal(a, b)


# --- ties ---------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [1, 3, 4, 7, 9, 0.5, 1.0])
def test_ties_prune_exactly_k_first_tied_in_order(amount):
    t = torch.tensor([0.0, 2.0, -1.0, 1.0, 0.0, 1.0, 5.0, -1.0, 0.0, 1.0, 2.0, 1.0])
    k = M.count_to_prune(t.numel(), amount)
    mask = M.local_magnitude_mask(t, amount)
    assert _n_zeros([mask]) == k
    # The same rule as a stable sort: smaller magnitudes first, ties in flat order.
    expected = torch.ones_like(t)
    expected[torch.sort(t.abs(), stable=True).indices[:k]] = 0
    assert torch.equal(mask, expected)


def test_many_ties_across_tensors_count_matches_torch():
    torch.manual_seed(5)
    ref = _linears(5, [(40, 30), (10, 40)])
    with torch.no_grad():
        for m in ref:
            m.weight.copy_(torch.randint(-2, 3, m.weight.shape).float())
    ours = copy.deepcopy(ref)
    prune.global_unstructured(_pairs(ref), pruning_method=prune.L1Unstructured, amount=0.55)
    M.global_magnitude_prune(_pairs(ours), 0.55)
    ref_zeros = _n_zeros([m.weight_mask for m in ref])
    assert _n_zeros([m.weight_mask for m in ours]) == ref_zeros == round(0.55 * 1600)
    # Everything strictly below the threshold goes, nothing strictly above does.
    w = torch.cat([m.weight_orig.detach().abs().reshape(-1) for m in ours])
    mask = torch.cat([m.weight_mask.reshape(-1) for m in ours])
    assert w[mask == 0].max() <= w[mask == 1].min()


def test_nan_weights_rank_last_like_topk():
    t = torch.tensor([0.5, float("nan"), 0.1, -0.3, float("nan"), 2.0])
    ref = nn.Linear(6, 1)
    with torch.no_grad():
        ref.weight.copy_(t.view(1, 6))
    for amount in (2, 4, 5, 6):
        expected = prune.l1_unstructured(copy.deepcopy(ref), "weight", amount).weight_mask
        mask = M.local_magnitude_mask(ref.weight, amount)
        assert _n_zeros([mask]) == amount
        if amount <= 4:  # beyond that torch's choice among NaNs is unspecified
            assert torch.equal(mask, expected)


# --- iterative pruning ------------------------------------------------------------------


def test_iterative_local_matches_torch_and_never_unprunes():
    torch.manual_seed(6)
    ref = nn.Conv2d(4, 6, 3)
    ours = copy.deepcopy(ref)
    before = torch.ones_like(ref.weight)
    for amount in (0.3, 0.5, 10, 0.2):
        prune.l1_unstructured(ref, "weight", amount)
        M.local_magnitude_prune([(ours, "weight")], amount)
        assert torch.equal(ours.weight_mask, ref.weight_mask)
        assert not bool((ours.weight_mask > before).any()), "a pruned weight came back"
        n_new = M.count_to_prune(int(before.sum()), amount)
        assert int((ours.weight_mask == 0).sum()) == int((before == 0).sum()) + n_new
        before = ours.weight_mask.clone()


def test_iterative_global_matches_torch_mixing_both_implementations():
    ref = _linears(7, [(20, 20), (5, 20), (30, 5)])
    ours = copy.deepcopy(ref)
    # A layer pruned before on its own, then global rounds by torch and by us in turn.
    prune.l1_unstructured(ref[1], "weight", 0.8)
    prune.l1_unstructured(ours[1], "weight", 0.8)
    prune.global_unstructured(_pairs(ref), pruning_method=prune.L1Unstructured, amount=0.4)
    M.global_magnitude_prune(_pairs(ours), 0.4)
    for r, o in zip(ref, ours):
        assert torch.equal(r.weight_mask, o.weight_mask)
    prune.global_unstructured(_pairs(ref), pruning_method=prune.L1Unstructured, amount=50)
    prune.global_unstructured(_pairs(ours), pruning_method=prune.L1Unstructured, amount=50)
    M.global_magnitude_prune(_pairs(ref), 0.5)
    M.global_magnitude_prune(_pairs(ours), 0.5)
    for r, o in zip(ref, ours):
        assert torch.equal(r.weight_mask, o.weight_mask)


def test_existing_masks_argument():
    torch.manual_seed(8)
    t = torch.randn(50)
    old = (torch.rand(50) > 0.3).float()
    mask = M.local_magnitude_mask(t, 0.5, existing_mask=old)
    assert bool((mask <= old).all())
    # amount applies to the unpruned slice, as torch's PruningContainer does.
    unpruned = t[old == 1].abs()
    k = M.count_to_prune(unpruned.numel(), 0.5)
    assert _n_zeros([mask]) == int((old == 0).sum()) + k
    assert bool((t.abs()[(old == 1) & (mask == 0)] <= unpruned.kthvalue(k).values).all())


# --- installed format -------------------------------------------------------------------


def test_installed_format_and_remove():
    torch.manual_seed(9)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    ref = copy.deepcopy(net)
    pairs = [(net[0], "weight"), (net[3], "weight")]
    M.global_magnitude_prune(pairs, 0.6)
    prune.global_unstructured(
        [(ref[0], "weight"), (ref[3], "weight")], pruning_method=prune.L1Unstructured, amount=0.6
    )
    for m, r in ((net[0], ref[0]), (net[3], ref[3])):
        assert "weight_orig" in dict(m.named_parameters())
        assert "weight" not in dict(m.named_parameters())
        assert "weight_mask" in dict(m.named_buffers())
        assert torch.equal(m.weight, m.weight_orig * m.weight_mask)
        assert [type(h) for h in m._forward_pre_hooks.values()] == [
            type(h) for h in r._forward_pre_hooks.values()
        ]
        assert prune.is_pruned(m)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(net(x), ref(x))
    for m, name in pairs:
        prune.remove(m, name)
        assert "weight" in dict(m.named_parameters())
        assert not hasattr(m, "weight_mask") and not hasattr(m, "weight_orig")
    assert not prune.is_pruned(net)
    assert _n_zeros([net[0].weight, net[3].weight]) == round(0.6 * (108 + 720))


def test_install_masks_composes_with_existing_pruning():
    torch.manual_seed(10)
    m = nn.Linear(8, 8)
    prune.random_unstructured(m, "weight", 0.5)
    old = m.weight_mask.clone()
    new = M.local_magnitude_mask(m.weight, 0.5, existing_mask=old)
    M.install_masks([(m, "weight")], [new])
    assert torch.equal(m.weight_mask, new)
    assert isinstance(next(iter(m._forward_pre_hooks.values())), prune.PruningContainer)
    with pytest.raises(ValueError):
        M.install_masks([(m, "weight")], [])


def test_local_prune_with_per_layer_amounts_and_atomic_failure():
    layers = _linears(11, [(10, 10), (4, 10)])
    pairs = _pairs(layers)
    M.local_magnitude_prune(pairs, {pairs[0]: 0.3, pairs[1]: 8})
    assert _n_zeros([layers[0].weight_mask]) == 30
    assert _n_zeros([layers[1].weight_mask]) == 8

    fresh = _linears(12, [(10, 10), (4, 10)])
    with pytest.raises(ValueError):
        M.local_magnitude_prune(_pairs(fresh), {(fresh[0], "weight"): 0.3, (fresh[1], "weight"): 41})
    assert not prune.is_pruned(nn.ModuleList(fresh)), "a bad amount must not half-prune"
    with pytest.raises(KeyError):
        M.local_magnitude_prune(_pairs(fresh), {(fresh[0], "weight"): 0.3})


def test_empty_inputs():
    assert M.global_magnitude_masks([], 0.5) == []
    M.global_magnitude_prune([], 0.5)
    assert _n_zeros([M.local_magnitude_mask(torch.empty(0), 0.5)]) == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_counts_and_order(dtype):
    # Few mantissa bits make ties common, so check the rule rather than torch's pick.
    torch.manual_seed(13)
    t = torch.randn(30, 40).to(dtype)
    mask = M.local_magnitude_mask(t, 0.4)
    assert mask.dtype == dtype
    assert _n_zeros([mask]) == 480
    assert t.abs()[mask == 0].max() <= t.abs()[mask == 1].min()


@pytest.mark.parametrize("k", [1, 700_000, 1_048_576, 2_000_000, 2_097_151])
def test_ties_at_full_size_take_exactly_k_first_tied_in_order(k):
    """Above a million scores the threshold is bracketed from a sample first, and the count
    strictly below it is derived from that search, not recounted: the result is still exactly
    the k smallest, ties in flattened order, NaN last, as a stable sort takes them."""
    from engine.pruning.threshold import lowest_k_mask
    torch.manual_seed(3)
    scores = torch.randint(0, 50, (1 << 21,)).float()   # 2M scores, about 42,000 of each value
    scores[torch.randint(0, 1 << 21, (1000,))] = float("nan")
    chosen = lowest_k_mask(scores, k)
    expected = torch.zeros_like(chosen)
    expected[torch.sort(torch.nan_to_num(scores, nan=float("inf")), stable=True).indices[:k]] = True
    assert int(chosen.sum()) == k and torch.equal(chosen, expected)


@pytest.mark.parametrize("k", [3, 1_000_000, 4_194_305, 6_000_000])
def test_tens_of_millions_of_ties_are_taken_first_in_order(k):
    """A second round over a pruned model: every pruned weight scores -inf, so the threshold is
    -inf and the ties are millions, across several of the pieces they are taken in."""
    from engine.pruning.threshold import lowest_k_mask
    torch.manual_seed(4)
    scores = torch.rand(9_000_000)
    pruned = torch.rand(9_000_000) < 0.7
    scores[pruned] = float("-inf")
    chosen = lowest_k_mask(scores, k)
    expected = torch.zeros_like(chosen)
    expected[torch.nonzero(pruned, as_tuple=True)[0][:k]] = True
    assert torch.equal(chosen, expected)

"""Properties every granularity must keep, checked over random shapes (hypothesis)."""
import copy

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from engine.config import PruneSpec
from engine.pruning.apply import prune_model
from engine.pruning.base import GRANULARITIES, PruneContext, PruneError
from engine.pruning.threshold import count_for_fraction

FAST = settings(max_examples=40, deadline=None)

conv_shapes = st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4), st.integers(1, 4))
conv1d_shapes = st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 5))
matrix_shapes = st.tuples(st.integers(1, 20), st.integers(1, 20))
any_shape = st.one_of(conv_shapes, conv1d_shapes, matrix_shapes)
sparsities = st.floats(0.0, 0.95)
seeds = st.integers(0, 2**16)

# dims that make up one group, per granularity, for a weight of the given rank
GROUP_DIMS = {
    "filter": lambda r: tuple(range(1, r)),
    "channel": lambda r: tuple(d for d in range(r) if d != 1),
    "kernel": lambda r: tuple(range(2, r)),
    "vector-rows": lambda r: (r - 1,),
    "vector-columns": lambda r: (r - 2,),
}


def _make(name):
    if name.startswith("vector"):
        return GRANULARITIES.create("vector", {"axis": name.split("-")[1]})
    return GRANULARITIES.create(name)


def _scores(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@FAST
@given(shape=any_shape, sparsity=sparsities, seed=seeds)
def test_fine_prunes_exactly(shape, sparsity, seed):
    mask = GRANULARITIES.create("fine").local_mask(_scores(shape, seed), sparsity)
    assert int((mask == 0).sum()) == count_for_fraction(mask.numel(), sparsity)


@pytest.mark.parametrize("name", sorted(GROUP_DIMS))
@FAST
@given(shape=any_shape, sparsity=sparsities, seed=seeds)
def test_structured_zeros_whole_groups_exactly(name, shape, sparsity, seed):
    if name == "kernel" and len(shape) < 3:
        return
    mask = _make(name).local_mask(_scores(shape, seed), sparsity)
    dims = GROUP_DIMS[name](len(shape))
    # every group is all kept or all pruned
    group_min = mask.amin(dim=dims)
    group_max = mask.amax(dim=dims)
    assert torch.equal(group_min, group_max)
    groups = group_min.numel()
    assert int((group_min == 0).sum()) == count_for_fraction(groups, sparsity)


@pytest.mark.parametrize("name", ["filter", "channel", "vector-rows"])
def test_structured_prunes_lowest_groups(name):
    torch.manual_seed(0)
    scores = torch.rand(6, 5, 3, 3)
    mask = _make(name).local_mask(scores, 0.5)
    dims = GROUP_DIMS[name](4)
    means = scores.mean(dim=dims)
    kept = mask.amax(dim=dims).bool()
    assert means[kept].min() >= means[~kept].max()


def _nm_groups(mask, n, m, layout):
    """Rows grouped as the N:M granularity groups them, padded with -1 (not a real weight)."""
    if mask.dim() >= 3 and layout == "channels":
        rows = mask.movedim(1, -1).reshape(-1, mask.shape[1])
    else:
        rows = mask.reshape(mask.shape[0], -1)
    pad = (-rows.shape[1]) % m
    return torch.nn.functional.pad(rows, (0, pad), value=-1).reshape(rows.shape[0], -1, m)


@FAST
@given(shape=any_shape, nm=st.tuples(st.integers(1, 7), st.integers(2, 8)).filter(lambda t: t[0] < t[1]),
       layout=st.sampled_from(["channels", "flattened"]), seed=seeds)
def test_nm_invariant_in_every_group_with_padding(shape, nm, layout, seed):
    n, m = nm
    scores = _scores(shape, seed)
    gran = GRANULARITIES.create("nm", {"n": n, "m": m, "conv_layout": layout})
    mask = gran.local_mask(scores, 0.0)
    groups = _nm_groups(mask, n, m, layout)
    real = (groups >= 0).sum(-1)
    kept = (groups == 1).sum(-1)
    assert torch.equal(kept, torch.clamp(real, max=n))       # exactly min(N, real) kept
    values = _nm_groups(scores, n, m, layout)
    # the kept ones are the largest of their group
    kept_min = torch.where(groups == 1, values, torch.full_like(values, 2.0)).amin(-1)
    dropped_max = torch.where(groups == 0, values, torch.full_like(values, -2.0)).amax(-1)
    assert torch.all(kept_min >= dropped_max)


def test_nm_rejects_n_not_below_m():
    with pytest.raises(PruneError, match="N < M"):
        GRANULARITIES.create("nm", {"n": 4, "m": 4})


def test_nm_on_linear_is_exactly_2_of_4(lenet):
    outcome = prune_model(lenet, PruneSpec(granularity="nm", include=["fc*"]), PruneContext(lenet))
    assert outcome.sparsity == {"fc1.weight": 0.5, "fc2.weight": 0.5, "fc3.weight": 0.5}
    groups = lenet.fc1.weight.reshape(120, -1, 4)
    assert torch.all((groups != 0).sum(-1) == 2)


def test_nm_refuses_global_scope(lenet):
    with pytest.raises(PruneError, match="only be applied locally"):
        prune_model(lenet, PruneSpec(granularity="nm", scope="global"), PruneContext(lenet))


class Mixed(nn.Module):
    """Every kind of weight the granularities must handle."""
    def __init__(self, conv=(4, 3, 3), emb=(11, 8), hidden=5):
        super().__init__()
        self.conv = nn.Conv2d(conv[1], conv[0], conv[2])
        self.conv1d = nn.Conv1d(3, 6, 3)
        self.embedding = nn.Embedding(*emb)
        self.lstm = nn.LSTM(emb[1], hidden)
        self.fc = nn.Linear(hidden, 7)


@pytest.mark.parametrize("granularity,options", [
    ("fine", {}), ("nm", {}), ("vector", {"axis": "rows"}), ("vector", {"axis": "columns"}),
    ("channel", {}), ("filter", {})])
def test_every_granularity_applies_to_embedding_lstm_linear_conv(granularity, options):
    torch.manual_seed(0)
    model = Mixed()
    outcome = prune_model(model, PruneSpec(granularity=granularity, options=options, sparsity=0.5),
                          PruneContext(model))
    assert set(outcome.sparsity) == {"conv.weight", "conv1d.weight", "embedding.weight",
                                     "lstm.weight_ih_l0", "lstm.weight_hh_l0", "fc.weight"}
    assert all(0.0 < s < 1.0 for s in outcome.sparsity.values())


@pytest.mark.parametrize("layer", ["embedding.weight", "lstm.weight_ih_l0", "fc.weight"])
def test_kernel_on_a_non_convolution_says_why(layer):
    model = Mixed()
    with pytest.raises(PruneError, match=rf"kernel granularity needs a convolution weight.*"
                                         rf"{layer.replace('.', '[.]')}"):
        prune_model(model, PruneSpec(granularity="kernel", include=[layer]), PruneContext(model))
    assert not hasattr(model.fc, "weight_mask")


def test_kernel_on_convolutions_zeroes_whole_kernels():
    torch.manual_seed(0)
    model = Mixed()
    prune_model(model, PruneSpec(granularity="kernel", include=["conv*"], sparsity=0.5),
                PruneContext(model))
    kernels = model.conv.weight.reshape(4 * 3, -1)
    assert torch.all((kernels == 0).all(1) | (kernels != 0).all(1))
    assert int((kernels == 0).all(1).sum()) == 6


class Layers(nn.Module):
    def __init__(self, shapes):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Conv2d(s[1], s[0], s[2]) if len(s) == 3 else nn.Linear(s[1], s[0]) for s in shapes)


layer_shapes = st.lists(st.one_of(st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 3)),
                                  st.tuples(st.integers(1, 12), st.integers(1, 12))),
                        min_size=1, max_size=4)


@pytest.mark.parametrize("granularity", ["fine", "filter", "channel", "vector"])
@settings(max_examples=25, deadline=None)
@given(shapes=layer_shapes, sparsity=sparsities, min_density=st.sampled_from([0.0, 0.1, 0.3]),
       seed=seeds)
def test_global_prunes_exactly_with_floor(granularity, shapes, sparsity, min_density, seed):
    torch.manual_seed(seed)
    model = Layers(shapes)
    gran = GRANULARITIES.create(granularity)
    groups = [gran.group_scores(torch.zeros(l.weight.shape)).numel() for l in model.layers]
    floors = [n - int(torch.ceil(torch.tensor(min_density * n))) for n in groups]
    wanted = count_for_fraction(sum(groups), sparsity)
    spec = PruneSpec(method="random", granularity=granularity, scope="global",
                     sparsity=sparsity, min_density=min_density, seed=seed)
    if wanted > sum(floors):   # the floor makes this target unreachable: refused, nothing pruned
        with pytest.raises(PruneError, match="cannot be reached while every layer keeps"):
            prune_model(model, spec, PruneContext(model, seed=seed))
        assert not any(hasattr(layer, "weight_mask") for layer in model.layers)
        return
    prune_model(model, spec, PruneContext(model, seed=seed))
    pruned = []
    for layer, n in zip(model.layers, groups):
        g = gran.group_scores(torch.where(layer.weight_mask.bool(), 1.0, float("-inf")))
        pruned.append(int(torch.isinf(g).sum()))
    assert sum(pruned) == wanted
    assert all(p <= f for p, f in zip(pruned, floors))


@pytest.mark.parametrize("granularity", ["fine", "filter", "channel", "kernel", "vector", "nm"])
@settings(max_examples=15, deadline=None)
@given(first=st.floats(0.05, 0.6), second=st.floats(0.05, 0.9), seed=seeds)
def test_rounds_never_unprune(granularity, first, second, seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8, 6))
    include = ["0.weight"] if granularity == "kernel" else None
    ctx = PruneContext(model, seed=seed)
    prune_model(model, PruneSpec(method="random", granularity="fine", sparsity=first, seed=seed,
                                 include=include), ctx)
    before = {n: b.clone() for n, b in model.named_buffers()}
    prune_model(model, PruneSpec(method="l1", granularity=granularity, sparsity=second,
                                 include=include), ctx)
    for name, mask in model.named_buffers():
        assert torch.all(mask <= before[name]), name
    if granularity == "fine":
        w = model[2].weight
        assert int((w == 0).sum()) == max(count_for_fraction(w.numel(), second),
                                          int((before["2.weight_mask"] == 0).sum()))


@pytest.mark.parametrize("granularity", ["fine", "filter", "nm"])
def test_random_masks_are_deterministic_for_a_seed(lenet, granularity):
    masks = []
    for seed in (5, 5, 6):
        model = copy.deepcopy(lenet)
        prune_model(model, PruneSpec(method="random", granularity=granularity, seed=seed),
                    PruneContext(model, seed=seed))
        masks.append(model.fc1.weight_mask)
    assert torch.equal(masks[0], masks[1])
    assert not torch.equal(masks[0], masks[2])

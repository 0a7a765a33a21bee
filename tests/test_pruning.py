import pytest
import torch
from torch.nn.utils import prune

from engine.config import PruneSpec
from engine.pruning.apply import make_permanent, prune_model
from engine.pruning.base import PruneContext, PruneError
from engine.pruning.targets import inspect_layers, select_targets
from engine.registry import OptionError


def _run(model, **kw):
    return prune_model(model, PruneSpec(**kw), PruneContext(model, seed=kw.get("seed", 0)))


def _zeros(t):
    return int((t == 0).sum())


def test_inspect_lists_conv_and_linear_weights(lenet):
    layers = inspect_layers(lenet)
    assert [l.name for l in layers] == ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight",
                                        "fc3.weight"]
    assert layers[2].shape == (120, 256) and layers[2].numel == 30720 and layers[2].sparsity == 0.0


def test_local_l1_prunes_exactly_and_installs_standard_buffers(lenet):
    _run(lenet, method="l1", sparsity=0.6)
    for name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        module = getattr(lenet, name)
        assert hasattr(module, "weight_orig") and hasattr(module, "weight_mask")
        assert _zeros(module.weight_mask) == round(0.6 * module.weight.numel())
        assert torch.equal(module.weight, module.weight_orig * module.weight_mask)


def test_local_l1_matches_torch(lenet):
    import copy
    ref = copy.deepcopy(lenet)
    _run(lenet, method="l1", sparsity=0.37, include=["fc1.weight"])
    prune.l1_unstructured(ref.fc1, "weight", 0.37)
    assert torch.equal(lenet.fc1.weight_mask, ref.fc1.weight_mask)


def test_global_l1_matches_torch(lenet):
    import copy
    ref = copy.deepcopy(lenet)
    _run(lenet, method="l1", scope="global", sparsity=0.7)
    pairs = [(getattr(ref, n), "weight") for n in ("conv1", "conv2", "fc1", "fc2", "fc3")]
    prune.global_unstructured(pairs, pruning_method=prune.L1Unstructured, amount=0.7)
    for name in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        assert torch.equal(getattr(lenet, name).weight_mask, getattr(ref, name).weight_mask)


def test_per_layer_dict(lenet):
    sparsity = {"conv1.weight": .85, "conv2.weight": .8, "fc1.weight": .75, "fc2.weight": .7,
                "fc3.weight": .8}
    outcome = _run(lenet, per_layer=sparsity)
    for name, s in sparsity.items():
        assert outcome.sparsity[name] == pytest.approx(s, abs=1 / 150)


def test_per_layer_dict_with_unknown_layer_is_rejected(lenet):
    with pytest.raises(PruneError, match="fc9.weight"):
        _run(lenet, per_layer={"fc9.weight": 0.5})
    assert not hasattr(lenet.fc1, "weight_mask")


def test_global_floor_keeps_every_layer_alive(lenet):
    with torch.no_grad():
        lenet.conv1.weight.mul_(1e-4)  # tiny weights: plain global pruning would wipe conv1 out
    outcome = _run(lenet, scope="global", sparsity=0.8, min_density=0.2)
    total = sum(l.numel for l in inspect_layers(lenet))
    zeros = sum(l.numel - l.nonzero for l in inspect_layers(lenet))
    assert zeros == round(0.8 * total)
    assert all(s <= 0.8 + 1e-9 for s in outcome.sparsity.values())
    assert outcome.sparsity["conv1.weight"] == pytest.approx(0.8, abs=0.01)


def test_random_is_seeded(lenet):
    import copy
    other = copy.deepcopy(lenet)
    third = copy.deepcopy(lenet)
    _run(lenet, method="random", sparsity=0.5, seed=3)
    _run(other, method="random", sparsity=0.5, seed=3)
    _run(third, method="random", sparsity=0.5, seed=4)
    assert torch.equal(lenet.fc1.weight_mask, other.fc1.weight_mask)
    assert not torch.equal(lenet.fc1.weight_mask, third.fc1.weight_mask)


def test_iterative_rounds_never_unprune(lenet):
    _run(lenet, method="random", sparsity=0.3, seed=1)
    first = lenet.fc1.weight_mask.clone()
    _run(lenet, method="l1", sparsity=0.6)
    second = lenet.fc1.weight_mask
    assert torch.all(second <= first)
    assert _zeros(second) == round(0.6 * second.numel())


def test_make_permanent_folds_masks(lenet):
    _run(lenet, sparsity=0.5, make_permanent=True)
    assert not hasattr(lenet.fc1, "weight_mask")
    assert _zeros(lenet.fc1.weight) == round(0.5 * lenet.fc1.weight.numel())
    assert make_permanent(lenet) == 0


def test_select_by_glob_and_regex(lenet):
    assert [t.name for t in select_targets(lenet, ["fc*"])] == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert [t.name for t in select_targets(lenet, ["re:conv\\d\\.weight"])] == ["conv1.weight",
                                                                             "conv2.weight"]
    assert [t.name for t in select_targets(lenet, None, ["fc3.*"])][-1] == "fc2.weight"
    with pytest.raises(ValueError, match="no prunable parameter matches 'lstm.*'"):
        select_targets(lenet, ["lstm.*"])


def test_unknown_method_is_named(lenet):
    with pytest.raises(OptionError, match="unknown criterion 'magic'"):
        _run(lenet, method="magic")


def test_unknown_option_is_named_and_nothing_is_pruned(lenet):
    # "axs" is a typo of the vector granularity's "axis"; ignoring it would prune rows, not columns
    with pytest.raises(PruneError, match=r"prune.options: .*has no option axs \(its options: axis\)"):
        _run(lenet, granularity="vector", options={"axs": "columns"})
    assert not any(hasattr(m, "weight_mask") for m in lenet.modules())


def test_option_of_another_method_is_rejected(lenet):
    with pytest.raises(PruneError, match=r"criterion 'l1' with granularity 'fine' has no option "
                                         r"batches \(it takes no options\)"):
        _run(lenet, options={"batches": 4})


@pytest.mark.parametrize("scope", ["global", "local"])
def test_scores_are_let_go_before_the_masks_are_installed(lenet, monkeypatch, scope):
    """At BERT-base size the scores are 344 MB and float masks as much again: the scores must
    be gone before the first mask is installed, and the masks waiting to be installed are
    booleans (global) that each go as they are installed, so memory holds one of those at a
    time. The pruned model is what it was (exact counts, float masks as torch makes them)."""
    import weakref
    import engine.pruning.apply as apply
    from engine.pruning.criteria import L1Criterion
    made, installed = [], []

    def scores(self, targets, ctx):
        out = [t.raw_weight().detach().abs() for t in targets]
        made.extend(weakref.ref(s) for s in out)
        return out

    real = prune.custom_from_mask

    def install(module, name, mask):
        installed.append((sum(r() is not None for r in made), mask.dtype))
        return real(module, name, mask)

    monkeypatch.setattr(L1Criterion, "scores", scores)
    monkeypatch.setattr(apply.prune, "custom_from_mask", install)
    _run(lenet, method="l1", sparsity=0.6, scope=scope)
    assert len(installed) == 5
    assert all(alive == 0 for alive, _ in installed)
    if scope == "global":
        assert all(dtype == torch.bool for _, dtype in installed)
    weights = [getattr(lenet, n) for n in ("conv1", "conv2", "fc1", "fc2", "fc3")]
    assert all(m.weight_mask.dtype == torch.float32 for m in weights)
    total = sum(m.weight.numel() for m in weights)
    assert sum(_zeros(m.weight_mask) for m in weights) == round(0.6 * total)

"""Data-driven criteria: gradient, Taylor, OBD, BN γ (and Network Slimming)."""
import copy

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from engine.config import PruneSpec
from engine.data.sources import DataBundle
from engine.pruning.apply import prune_model
from engine.pruning.base import CRITERIA, PruneContext, PruneError
from engine.pruning.bn_gamma import following_batchnorms
from engine.pruning.targets import select_targets


def _first_batch(data, size, seed=0):
    return next(iter(data.loader("train", size, shuffle=True, seed=seed)))


def _scores(name, model, data, options, seed=0, log=None):
    targets = select_targets(model)
    ctx = PruneContext(model, seed=seed, data=data, log=log or (lambda _m: None))
    with torch.enable_grad():
        return targets, CRITERIA.create(name, options).scores(targets, ctx)


def test_gradient_and_taylor_match_a_hand_computed_gradient(lenet, tiny_data):
    x, y = _first_batch(tiny_data, 16)
    loss = nn.functional.cross_entropy(lenet(x), y)
    grad = torch.autograd.grad(loss, lenet.fc1.weight)[0]
    _, g = _scores("gradient", lenet, tiny_data, {"batches": 1, "grad_batch_size": 16})
    _, t = _scores("taylor", lenet, tiny_data, {"batches": 1, "grad_batch_size": 16})
    assert torch.allclose(g[2], grad.abs(), atol=1e-6)
    assert torch.allclose(t[2], (grad * lenet.fc1.weight).abs(), atol=1e-6)
    assert lenet.fc1.weight.grad is None  # scoring leaves no gradients behind


def test_gradient_accumulates_over_k_batches(lenet, tiny_data):
    batches = iter(tiny_data.loader("train", 16, shuffle=True, seed=0))
    expected = torch.zeros_like(lenet.fc3.weight)
    for _ in range(3):
        x, y = next(batches)
        loss = nn.functional.cross_entropy(lenet(x), y)
        expected += torch.autograd.grad(loss, lenet.fc3.weight)[0].abs() / 3
    _, g = _scores("gradient", lenet, tiny_data, {"batches": 3, "grad_batch_size": 16})
    assert torch.allclose(g[4], expected, atol=1e-6)


def test_gradient_criteria_need_data(lenet):
    with pytest.raises(PruneError, match="needs data"):
        prune_model(lenet, PruneSpec(method="taylor"), PruneContext(lenet))


def test_gradient_scores_are_deterministic_for_a_seed(lenet, tiny_data):
    _, a = _scores("taylor", lenet, tiny_data, {"batches": 2}, seed=1)
    _, b = _scores("taylor", lenet, tiny_data, {"batches": 2}, seed=1)
    _, c = _scores("taylor", lenet, tiny_data, {"batches": 2}, seed=2)
    assert torch.equal(a[2], b[2]) and not torch.equal(a[2], c[2])


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 5)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def _tiny_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    return DataBundle(TensorDataset(x, y), TensorDataset(x, y), 3, (6,), "tiny")


def _brute_hessian_diag(model, param, x, y):
    loss = nn.functional.cross_entropy(model(x), y)
    (g,) = torch.autograd.grad(loss, param, create_graph=True)
    flat = g.reshape(-1)
    return torch.stack([torch.autograd.grad(flat[i], param, retain_graph=True)[0].reshape(-1)[i]
                        for i in range(flat.numel())]).reshape(param.shape)


def test_obd_exact_is_half_h_w_squared_and_logged():
    torch.manual_seed(0)
    model, data = Tiny(), _tiny_data()
    x, y = _first_batch(data, 32)
    logs = []
    _, scores = _scores("obd", model, data, {"batches": 1, "grad_batch_size": 32,
                                             "exact_max_params": 100}, log=logs.append)
    for i, layer in enumerate((model.fc1, model.fc2)):
        h = _brute_hessian_diag(model, layer.weight, x, y)
        assert torch.allclose(scores[i], 0.5 * h * layer.weight.detach() ** 2, atol=1e-6)
    assert any("fc1.weight" in m and "exact Hessian diagonal" in m for m in logs)


def test_obd_hutchinson_estimates_the_diagonal_and_says_so():
    torch.manual_seed(0)
    model, data = Tiny(), _tiny_data()
    x, y = _first_batch(data, 32)
    logs = []
    _, scores = _scores("obd", model, data, {"batches": 1, "grad_batch_size": 32,
                                             "exact_max_params": 20, "hutchinson_samples": 400},
                        log=logs.append)
    assert any("fc1.weight" in m and "Hutchinson" in m for m in logs)   # 30 weights > 20
    assert any("fc2.weight" in m and "exact" in m for m in logs)        # 15 weights <= 20
    exact = 0.5 * _brute_hessian_diag(model, model.fc1.weight, x, y) * model.fc1.weight.detach() ** 2
    estimate = scores[0]
    rel = (estimate - exact).norm() / exact.norm()
    assert rel < 0.25, float(rel)


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 8, 5)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean(dim=(2, 3)))


class Untraceable(ConvBN):
    def forward(self, x):
        if x.sum() > 1e9:     # data-dependent control flow: torch.fx cannot trace this
            return x
        return super().forward(x)


def test_bn_pairs_by_fx_and_by_registration_order():
    pairs, how = following_batchnorms(ConvBN())
    assert set(pairs) == {"conv1", "conv2"} and "fx" in how
    model = Untraceable()
    pairs, how = following_batchnorms(model)
    assert pairs["conv2"] is model.bn2 and "registration order" in how


def test_bn_gamma_prunes_filters_with_smallest_gamma():
    torch.manual_seed(0)
    model = ConvBN()
    with torch.no_grad():
        model.bn2.weight.copy_(torch.tensor([0.9, -0.01, 0.5, 0.02, -0.7, 0.3, 0.05, 1.0]))
    outcome = prune_model(model, PruneSpec(method="bn_gamma", granularity="filter",
                                           include=["conv2.weight"], sparsity=0.5),
                          PruneContext(model))
    kept = model.conv2.weight_mask.amax(dim=(1, 2, 3)).bool()
    assert kept.tolist() == [True, False, True, False, True, False, False, True]
    assert outcome.sparsity["conv2.weight"] == 0.5


def test_bn_gamma_explains_missing_batchnorm_and_wrong_granularity(lenet):
    with pytest.raises(PruneError, match="no BatchNorm follows conv1.weight"):
        prune_model(lenet, PruneSpec(method="bn_gamma", granularity="filter"), PruneContext(lenet))
    with pytest.raises(PruneError, match="granularity filter only"):
        prune_model(lenet, PruneSpec(method="bn_gamma", granularity="fine"), PruneContext(lenet))


def test_network_slimming_shrinks_gamma_before_scoring(tiny_data):
    torch.manual_seed(0)
    base = ConvBN()
    sums = {}
    for l1 in (0.0, 0.5):
        model = copy.deepcopy(base)
        prune_model(model, PruneSpec(method="bn_gamma", granularity="filter",
                                     include=["conv*"], sparsity=0.25,
                                     options={"slimming_epochs": 2, "slimming_l1": l1,
                                              "slimming_lr": 0.05}),
                    PruneContext(model, data=tiny_data))
        sums[l1] = float(model.bn1.weight.abs().sum() + model.bn2.weight.abs().sum())
    assert sums[0.5] < 0.8 * sums[0.0]

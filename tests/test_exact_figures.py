"""Each figure PruneLab reports, checked against a reference computed here independently (a hand
count, a real file's size, torch.nn.utils.prune, torch.autograd.functional.hessian, exact integer
arithmetic), never against PruneLab's own helpers."""
import copy
import os
from fractions import Fraction

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from engine.config import PruneSpec
from engine.export import export_model
from engine.metrics import count_macs, storage_bytes
from engine.pruning.apply import prune_model
from engine.pruning.base import PruneContext


class SharedLinear(nn.Module):
    """One Linear applied twice per forward pass, as ALBERT-style shared blocks do."""
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 32)

    def forward(self, x):
        return self.fc(torch.relu(self.fc(x)))


def test_effective_macs_scale_every_call_of_a_shared_layer():
    model = SharedLinear()
    mask = torch.zeros(32, 32)
    mask[:, :8] = 1                      # 24 of 32 input columns zeroed
    with torch.no_grad():
        prune.custom_from_mask(model.fc, "weight", mask)
    dense, effective = count_macs(model, torch.randn(1, 32))
    # by hand: 2 calls x 32 outputs x 32 inputs, of which 8 inputs are non-zero
    assert dense == 2 * 32 * 32
    assert effective == 2 * 32 * 8


class TiedEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(100, 16)
        self.decoder = nn.Linear(16, 100, bias=False)
        self.decoder.weight = self.embedding.weight

    def forward(self, tokens):
        return self.decoder(self.embedding(tokens)).mean(1)


def _saved_size(tmp_path, state) -> int:
    # torch.save records the file's stem inside the zip; "archive" is what an in-memory save records
    path = tmp_path / "archive.pt"
    torch.save(state, path)
    return os.path.getsize(path)


def test_dense_size_is_the_size_of_the_saved_file(tmp_path, lenet):
    dense, _ = storage_bytes(lenet)
    assert dense == _saved_size(tmp_path, dict(lenet.state_dict()))
    prune_model(lenet, PruneSpec(sparsity=0.7), PruneContext(lenet))
    folded = copy.deepcopy(lenet)
    for module in folded.modules():
        if prune.is_pruned(module) and hasattr(module, "weight_orig"):
            prune.remove(module, "weight")
    dense, _ = storage_bytes(lenet)
    assert dense == _saved_size(tmp_path, dict(folded.state_dict()))
    export_model(lenet, tmp_path / "pruned_lenet.pt")      # the file the row describes
    assert dense == os.path.getsize(tmp_path / "pruned_lenet.pt")


def test_tied_weights_are_counted_once(tmp_path):
    model = TiedEmbedding()
    dense, sparse = storage_bytes(model)
    assert dense == _saved_size(tmp_path, dict(model.state_dict()))
    assert sparse == 100 * 16 * 4     # one 100x16 float32 tensor (no zeros), not two


def test_min_density_floor_keeps_the_exact_ceiling_on_large_layers():
    from engine.models.architectures import build_architecture
    torch.manual_seed(0)
    model = build_architecture("resnet18", 10)
    prune_model(model, PruneSpec(sparsity=0.5, scope="global", min_density=0.49),
                PruneContext(model))
    floored = 0
    for name in ("layer4.0.conv2", "layer4.1.conv1", "layer4.1.conv2"):
        weight = model.get_submodule(name).weight
        n = weight.numel()
        assert n == 512 * 512 * 9 == 2_359_296
        need = -(-49 * n // 100)             # ceil(0.49 n) in integers: 1,156,056
        kept = int(torch.count_nonzero(weight))
        assert kept >= need
        floored += kept == need
    assert floored  # the floor is what bound these layers, so the test exercises it


def test_min_density_with_local_scope_is_refused_with_one_line(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"prune": {"scope": "local", "sparsity": 0.5, "min_density": 0.2}}))
    result = subprocess.run([sys.executable, str(root / "main.py"), "--headless", str(recipe),
                             "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and "min_density" in lines[0] and "scope 'global' only" in lines[0]
    assert not any(tmp_path.glob("*.pt"))     # refused before anything ran


def test_random_initialisation_follows_the_recipe_seed(tmp_path):
    import numpy as np
    from PIL import Image
    from engine.config import DataSpec, ModelSpec
    from engine.session import Session
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(4):
            folder = tmp_path / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(10):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                    folder / f"{i}.png")
    data = DataSpec(source="imagefolder", root=str(tmp_path), image_size=32, channels=3)

    def open_resnet(seed):
        return Session.open(ModelSpec(source="torchvision", arch="resnet18", num_classes=4), data,
                            seed=seed)

    first, second, other = open_resnet(0), open_resnet(0), open_resnet(1)
    a, b, c = (s.model.state_dict() for s in (first, second, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])   # the seed is what decides
    # same weights, same figures: the evaluation batch size is chosen by timing one pass, so the
    # loss is summed in batches that may differ, which moves it in the seventh digit only
    m1, m2 = first.measure(latency=False), second.measure(latency=False)
    assert m1.accuracy == m2.accuracy
    assert m1.loss == pytest.approx(m2.loss, rel=1e-6)


def test_nm_summary_states_what_each_layer_got_and_why(lenet):
    outcome = prune_model(lenet, PruneSpec(granularity="nm", options={"n": 2, "m": 4}),
                          PruneContext(lenet))
    # by hand, 2:4 over consecutive input channels at each kernel position: conv1 has 1 input
    # channel (a group of 1 keeps it), conv2 has 6 (one group of 4 keeps 2, the last of 2 keeps
    # both: 2 of 6 pruned); the linear layers' widths 256, 120, 84 are multiples of 4
    by_hand = {"conv1.weight": Fraction(0), "conv2.weight": Fraction(2, 6),
               "fc1.weight": Fraction(1, 2), "fc2.weight": Fraction(1, 2), "fc3.weight": Fraction(1, 2)}
    for name, sparsity in by_hand.items():
        mask = lenet.get_buffer(name.replace(".weight", ".weight_mask"))
        assert Fraction(int((mask == 0).sum()), mask.numel()) == sparsity
        assert f"{name} {float(sparsity):.1%}" in outcome.summary
    assert "conv1.weight 0.0% (1 input channel per group of 4" in outcome.summary
    assert "conv2.weight 33.3% (6 input channels" in outcome.summary
    assert "fixed 50% in every group " not in outcome.summary   # no longer claimed for every layer


def test_hutchinson_probes_each_layer_alone_and_reports_its_spread():
    """Probing one layer alone, the estimate's only noise is that layer's own off-diagonal
    Hessian entries: E‖ĥ − h‖² = Σ_(e≠k) H_ek² / probes over the layer's block. A probe shared by
    all layers adds the cross-layer blocks on top. Checked against the exact block Hessian."""
    from engine.config import DataSpec, ModelSpec
    from engine.data.sources import load_data
    from engine.models.sources import load_model
    from engine.pruning.base import CRITERIA
    from engine.pruning.targets import select_targets
    model, data = load_model(ModelSpec()).model, load_data(DataSpec())
    x, y = next(iter(data.loader("train", 32, shuffle=True, seed=0)))  # the batch OBD draws
    probes = 128
    targets = select_targets(model)
    logs = []
    ctx = PruneContext(model, seed=0, data=data, log=logs.append)
    with torch.enable_grad():
        scores = CRITERIA.create("obd", {"batches": 1, "grad_batch_size": 32, "exact_max_params": 0,
                                         "hutchinson_samples": probes}).scores(targets, ctx)
    for index, name in ((0, "conv1.weight"), (1, "conv2.weight"), (4, "fc3.weight")):
        weight = model.get_parameter(name).detach()

        def loss(flat, name=name, shape=weight.shape):
            params = {k: p.detach() for k, p in model.named_parameters()}
            params[name] = flat.reshape(shape)
            return nn.functional.cross_entropy(torch.func.functional_call(model, params, (x,)), y)
        block = torch.autograd.functional.hessian(loss, weight.reshape(-1), vectorize=True)
        diagonal = block.diagonal()
        expected_error = float(((block ** 2).sum() - (diagonal ** 2).sum()).sqrt()
                               / diagonal.norm()) / probes ** 0.5
        estimate = scores[index].reshape(-1) / (0.5 * weight.reshape(-1) ** 2)
        error = float((estimate - diagonal).norm() / diagonal.norm())
        assert error < 1.25 * expected_error, (name, error, expected_error)
        line = next(m for m in logs if m.startswith(f"obd: {name} "))
        reported = float(line.rsplit("relative standard error ", 1)[1])
        assert 0.5 * expected_error < reported < 2 * expected_error, (name, reported, expected_error)


def test_sensitivity_scan_of_a_global_spec_with_a_floor_still_runs():
    """The scan prunes one layer at a time with local scope; the global floor has no meaning there
    and must not make the scan's own specs invalid."""
    from engine.config import DataSpec, MetricsSpec, ModelSpec
    from engine.session import Session
    session = Session.open(ModelSpec(), DataSpec(), MetricsSpec(measure_latency=False))
    spec = PruneSpec(scope="global", sparsity=0.5, min_density=0.1, include=["fc2.weight",
                                                                            "fc3.weight"])
    result = session.sensitivity_scan(spec, [0.5], max_eval_batches=1)
    assert list(result.curves) == ["fc2.weight", "fc3.weight"]

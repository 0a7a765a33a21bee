"""Failures inside operations that change the model, non-finite weights and half-precision
checkpoints, at the engine level (the Session both the CLI and the window drive)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from engine.config import DataSpec, ExportSpec, FinetuneSpec, ModelSpec, PruneSpec, ScheduleSpec
from engine.finetune import FinetuneError
from engine.messages import one_line
from engine.models.sources import LoadedModel
from engine.pruning.apply import has_masks
from engine.session import Session
from tests.hostile.hostile_helpers import hostile_files, tree_state  # noqa: F401

class SmallBN(nn.Module):
    """A conv net with BatchNorm (running statistics are what a failed epoch corrupts) and a part
    left in eval mode on purpose, so restoring "eval everywhere" would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))))

class FailsAt(Dataset):
    """A training split whose ``bad``-th read (1-based) fails, as an unreadable image would."""

    def __init__(self, inner: Dataset, bad: int) -> None:
        self.inner, self.bad, self.reads = inner, bad, 0

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads == self.bad:
            raise OSError(f"cannot identify image file '/data/train/img_{i}.png'")
        return self.inner[i]

def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}

def _same(before: dict[str, torch.Tensor], model: nn.Module) -> bool:
    after = model.state_dict()
    return before.keys() == after.keys() and all(
        torch.equal(before[k], after[k].cpu()) for k in before)

@pytest.fixture
def bn_session(tiny_data):
    torch.manual_seed(0)
    model = SmallBN()
    model.train()
    model.head.eval()   # a mixed state the transaction must give back exactly
    return Session(LoadedModel(model, "small BN net"), tiny_data)

def test_failed_finetuning_restores_weights_bn_stats_masks_and_modes(bn_session, tiny_data):
    session = bn_session
    session.prune(PruneSpec(sparsity=0.5))
    model = session.model
    before = _state(model)
    modes = [m.training for m in model.modules()]
    # batches of 8: the 52nd read is the 4th sample of batch 7
    tiny_data.train = FailsAt(tiny_data.train, bad=6 * 8 + 4)
    with pytest.raises(FinetuneError) as failure:
        session.finetune(FinetuneSpec(epochs=1, batch_size=8, lr=0.5, device="cpu"))
    message = one_line(failure.value)
    assert "epoch 1, batch 7 of" in message and "/data/train/img_" in message
    assert "as it was before fine-tuning" in message
    assert _same(before, session.model)                         # weights, BN stats, masks
    assert [m.training for m in session.model.modules()] == modes
    assert has_masks(session.model)
    # the same object keeps working: a later fine-tuning on good data runs
    tiny_data.train.bad = 0
    assert session.finetune(FinetuneSpec(epochs=1, batch_size=8, device="cpu")).epochs

def test_prune_failing_half_way_leaves_no_mask(bn_session, monkeypatch):
    import engine.session as session_module
    real = session_module.prune_model

    def prune_then_fail(model, spec, ctx):
        real(model, spec, ctx)          # every layer masked ...
        raise RuntimeError("criterion plugin crashed")   # ... then a failure
    monkeypatch.setattr(session_module, "prune_model", prune_then_fail)
    before = _state(bn_session.model)
    with pytest.raises(RuntimeError, match="plugin crashed"):
        bn_session.prune(PruneSpec(sparsity=0.5))
    assert not has_masks(bn_session.model) and _same(before, bn_session.model)

def test_make_permanent_failing_keeps_the_masks(bn_session, monkeypatch):
    import engine.session as session_module
    bn_session.prune(PruneSpec(sparsity=0.5))
    before = _state(bn_session.model)

    def half_then_fail(model):
        from torch.nn.utils import prune
        prune.remove(model.conv, "weight")
        raise RuntimeError("disk full")
    monkeypatch.setattr(session_module, "make_permanent", half_then_fail)
    with pytest.raises(RuntimeError):
        bn_session.make_permanent()
    assert _same(before, bn_session.model)

def test_schedule_failing_in_round_two_restores_the_model_from_before(bn_session, monkeypatch):
    session = bn_session
    before = _state(session.model)
    calls = {"n": 0}
    real = session.finetune

    def finetune_then_fail(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("cannot identify image file '/data/train/x.png'")
        return real(*args, **kwargs)
    monkeypatch.setattr(session, "finetune", finetune_then_fail)
    with pytest.raises(OSError):
        session.run_schedule(PruneSpec(sparsity=0.6), FinetuneSpec(epochs=1, device="cpu",
                                                                   max_batches_per_epoch=2),
                             ScheduleSpec("iterative", {"rounds": 3}))
    assert calls["n"] == 2 and not has_masks(session.model) and _same(before, session.model)

# ---------------------------------------------------------------- non-finite weights

def _open_nan(hostile_files, logs):
    spec = ModelSpec(source="state_dict", arch="lenet", path=str(hostile_files / "nan.pt"))
    return Session.open(spec, DataSpec(max_eval_samples=32), log=logs.append)

def test_a_checkpoint_with_nan_and_inf_opens_with_a_warning_naming_them(hostile_files):
    logs: list[str] = []
    session = _open_nan(hostile_files, logs)
    warning = next(m for m in logs if m.startswith("warning"))
    assert "conv1.weight (2 NaN)" in warning and "fc1.weight (1 inf)" in warning
    snapshot = session.snapshot()
    conv1 = session.original_snapshot.histograms["conv1.weight"]
    assert conv1.nonfinite == 2 and np.isfinite(conv1.edges).all()
    assert conv1.counts.sum() == 150 - 2             # every finite weight binned, no NaN
    assert snapshot.histograms["fc1.weight"].nonfinite == 1
    session.measure_original()
    session.measure_current()
    first = session.comparison()[0]
    assert first.metric.startswith("Non-finite weights") and first.original == 3

def test_pruning_keeps_nan_weights_deterministically(hostile_files):
    session = _open_nan(hostile_files, [])
    masks = []
    for _ in range(2):
        session.revert()
        session.prune(PruneSpec(sparsity=0.9, per_layer={"conv1.weight": 0.99}))
        mask = session.model.conv1.weight_mask
        masks.append(mask.clone())
        nan_at = torch.isnan(session.model.conv1.weight_orig)
        assert bool(mask[nan_at].eq(1).all())          # NaN counts as +inf: kept
    assert torch.equal(masks[0], masks[1])

# ---------------------------------------------------------------- dtypes

@pytest.mark.parametrize("name,dtype", [("half.pt", torch.float16), ("bf16.pt", torch.bfloat16)])
def test_half_precision_checkpoints_export_in_their_own_dtype(hostile_files, tmp_path, name, dtype):
    logs: list[str] = []
    before = tree_state(hostile_files)
    session = Session.open(ModelSpec(source="state_dict", arch="lenet", path=str(hostile_files / name)),
                           DataSpec(max_eval_samples=32), log=logs.append)
    session.prune(PruneSpec(sparsity=0.5))
    paths = session.export(ExportSpec(path=str(tmp_path / "out.pt"), report=False))
    saved = torch.load(paths[0], weights_only=True)
    assert {v.dtype for v in saved.values() if v.is_floating_point()} == {dtype}
    assert any(str(dtype).split(".")[-1] in m and "dtype" in m for m in logs)
    assert tree_state(hostile_files) == before

def test_messages_are_one_line_of_at_most_300_characters():
    text = one_line(RuntimeError("first line " + "x" * 1000 + "\nsecond line"))
    assert "\n" not in text and len(text) <= 300 and text.startswith("first line")
    assert one_line(KeyError("conv9.weight")) == "missing key 'conv9.weight'"
    assert one_line(ValueError()) == "ValueError"

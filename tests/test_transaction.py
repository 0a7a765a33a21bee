"""The restore point every model-changing operation holds: compact, and exact when swapped in."""
import copy

import pytest
import torch
from torch import nn

from engine.config import FinetuneSpec, PruneSpec
from engine.models.sources import LoadedModel
from engine.session import Session
import engine.kept
from engine.kept import KeptModel
from engine.transaction import compact, with_float_masks


def _tensor_bytes(model: nn.Module) -> int:
    """Bytes of every tensor the module tree holds: parameters, buffers and plain tensor
    attributes (torch.nn.utils.prune's masked ``weight`` is one of the latter)."""
    seen, total = set(), 0
    for module in model.modules():
        for value in list(module._parameters.values()) + list(module._buffers.values()) + [
                v for v in vars(module).values() if isinstance(v, torch.Tensor)]:
            if value is not None and id(value) not in seen:
                seen.add(id(value))
                total += value.numel() * value.element_size()
    return total


def compact_copy(model, spill_bytes=None, folder=None):
    """The restore point a transaction takes, as a module."""
    return KeptModel(model, compact(model), spill_bytes, folder).model()


# the restore point in memory (a small model), and in a file (as at full size)
IN_MEMORY_OR_FILE = pytest.mark.parametrize("spill_bytes", [None, 0], ids=["memory", "file"])


@pytest.fixture
def pruned(lenet, tiny_data):
    session = Session(LoadedModel(lenet, "LeNet"), tiny_data)
    session.prune(PruneSpec(method="l1", scope="global", sparsity=0.6))
    return session


@IN_MEMORY_OR_FILE
def test_a_compact_copy_holds_boolean_masks_and_no_masked_weights(pruned, spill_bytes, tmp_path):
    model = pruned.model
    compact = compact_copy(model, spill_bytes, tmp_path)
    masks = {k: v for k, v in compact.state_dict().items() if k.endswith("_mask")}
    assert masks and all(v.dtype == torch.bool for v in masks.values())
    # weight_orig in float, masks in bytes: well under a plain deep copy (weight_orig, float
    # mask and the masked weight)
    assert _tensor_bytes(compact) < 0.6 * _tensor_bytes(copy.deepcopy(model))
    # the live model is untouched: its masks are still torch's floats
    assert all(v.dtype == torch.float32 for k, v in model.state_dict().items() if k.endswith("_mask"))


@IN_MEMORY_OR_FILE
def test_a_compact_copy_loads_and_runs_exactly_as_the_model_it_copied(pruned, spill_bytes,
                                                                      tmp_path):
    model = pruned.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = pruned.data.example_input(4)
    with torch.no_grad():
        expected = model(x)
    compact = compact_copy(model, spill_bytes, tmp_path)
    with torch.no_grad():   # change the live model, then load the copy's state back into it
        for p in model.parameters():
            p.add_(1.0)
    model.load_state_dict(compact.state_dict())
    assert all(torch.equal(v, before[k]) and v.dtype == before[k].dtype
               for k, v in model.state_dict().items())
    runnable = with_float_masks(compact)
    assert {k: v.dtype for k, v in runnable.state_dict().items()} == \
        {k: v.dtype for k, v in before.items()}
    with torch.no_grad():
        assert torch.equal(runnable(x), expected)


@IN_MEMORY_OR_FILE
def test_a_failed_finetune_swaps_back_a_model_that_trains_and_matches(pruned, monkeypatch,
                                                                     spill_bytes, tmp_path):
    if spill_bytes is not None:
        monkeypatch.setattr(engine.kept, "SPILL_BYTES", spill_bytes)
        monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    before = {k: v.clone() for k, v in pruned.model.state_dict().items()}
    import engine.finetune as finetune_module

    def broken_step(*_a, **_k):
        raise RuntimeError("a plugin failed in batch 2")
    monkeypatch.setattr(finetune_module.nn.functional, "cross_entropy", broken_step)
    with pytest.raises(ValueError, match="plugin failed"):
        pruned.finetune(FinetuneSpec(epochs=1, batch_size=8, device="cpu"))
    monkeypatch.undo()
    engine.kept.wait_for_removals()
    assert list(tmp_path.iterdir()) == []   # the restore point's file went with it
    after = pruned.model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], v) and after[k].dtype == v.dtype for k, v in before.items())
    # and the model is a working one: it fine-tunes, pruned weights stay zero
    pruned.finetune(FinetuneSpec(epochs=1, batch_size=8, device="cpu", max_batches_per_epoch=2))
    for key, mask in pruned.model.state_dict().items():
        if key.endswith("weight_mask"):
            module = pruned.model.get_submodule(key.rsplit(".", 1)[0])
            assert torch.all(module.weight[mask == 0] == 0)


def test_the_first_operation_restores_from_the_kept_original_without_writing(monkeypatch,
                                                                             tmp_path):
    """While no operation has changed the model, its restore point is the session's original
    file (nothing written); a failure half-way through a prune still puts back the weights and
    each module's train/eval flag as they were just before it. Later operations write their own."""
    from torch.nn.utils import prune

    from engine.config import DataSpec, MetricsSpec, ModelSpec
    monkeypatch.setattr(engine.kept, "SPILL_BYTES", 0)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    session = Session.open(ModelSpec(), DataSpec(), MetricsSpec(measure_latency=False))
    session.model.train()
    next(m for m in session.model.modules() if isinstance(m, nn.Linear)).eval()
    modes = [m.training for m in session.model.modules()]
    before = {k: v.clone() for k, v in session.model.state_dict().items()}
    kept_files = sorted(tmp_path.iterdir())
    written = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda *a, **k: (written.append(a[1]), real_save(*a, **k)))
    real_mask = prune.custom_from_mask
    calls = []

    def second_layer_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a plugin failed on the second layer")
        return real_mask(*args, **kwargs)
    monkeypatch.setattr(prune, "custom_from_mask", second_layer_fails)
    with pytest.raises(RuntimeError, match="second layer"):
        session.prune(PruneSpec(method="l1", scope="global", sparsity=0.6))
    assert len(calls) == 2 and written == []   # one layer was masked; no restore point written
    after = session.model.state_dict()
    assert after.keys() == before.keys() and not prune.is_pruned(session.model)
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert [m.training for m in session.model.modules()] == modes
    assert session.model_version == 0 and sorted(tmp_path.iterdir()) == kept_files
    monkeypatch.setattr(prune, "custom_from_mask", real_mask)
    session.prune(PruneSpec(method="l1", scope="global", sparsity=0.6))
    session.prune(PruneSpec(method="l1", scope="global", sparsity=0.8))
    assert len(written) == 1   # the second prune changed a pruned model: its own restore point


def test_an_operation_gives_its_freed_memory_back_once_when_it_ends(pruned, monkeypatch):
    """The outermost transaction hands malloc's freed pages back when it succeeds; the steps
    of a schedule (nested transactions) do not each pay for it, and a failed or stopped one
    does not wait for it before it is answered."""
    import engine.transaction
    from engine.config import ScheduleSpec
    released = []
    monkeypatch.setattr(engine.transaction, "release_free_memory", lambda: released.append(1))
    pruned.prune(PruneSpec(method="l1", scope="global", sparsity=0.7))
    assert released == [1]
    released.clear()
    pruned.run_schedule(PruneSpec(method="l1", scope="global", sparsity=0.8),
                        FinetuneSpec(epochs=1, max_batches_per_epoch=1),
                        ScheduleSpec(kind="iterative", options={"rounds": 2}))
    assert released == [1]
    from torch.nn.utils import prune

    def fails(*args, **kwargs):
        raise RuntimeError("a plugin failed")
    monkeypatch.setattr(prune, "custom_from_mask", fails)
    with pytest.raises(RuntimeError, match="a plugin failed"):
        pruned.prune(PruneSpec(method="l1", scope="global", sparsity=0.9))
    assert released == [1]

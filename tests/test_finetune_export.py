import threading

import pytest
import torch
from torch.utils.data import ConcatDataset, TensorDataset

from engine.config import FinetuneSpec, PruneSpec
from engine.export import ExportError, export_model
from engine.finetune import finetune
from engine.metrics import evaluate
from engine.models.lenet import LeNet
from engine.progress import CancelToken
from engine.pruning.apply import prune_model
from engine.pruning.base import PruneContext


def _pruned(lenet, sparsity=0.8):
    prune_model(lenet, PruneSpec(sparsity=sparsity), PruneContext(lenet))
    return lenet


def test_finetune_keeps_masks_and_improves(lenet, tiny_data):
    _pruned(lenet, 0.5)
    zeros_before = {n: int((getattr(lenet, n).weight == 0).sum()) for n in ("conv1", "fc1")}
    steps, reports = [], []
    result = finetune(lenet, tiny_data, FinetuneSpec(epochs=3, optimizer="adam", lr=3e-3,
                                                               batch_size=32),
                      progress=reports.append, on_step=lambda s, l: steps.append(s))
    assert [e.epoch for e in result.epochs] == [1, 2, 3]
    assert result.best.test.accuracy > 0.5
    assert steps == list(range(1, 3 * 6 + 1))
    assert len(tiny_data.train) == 192  # 256 less the 64 held out for validation
    assert reports[-1].step == reports[-1].total == 3 * 6 and reports[-1].eta_s == 0
    for n, zeros in zeros_before.items():
        assert int((getattr(lenet, n).weight == 0).sum()) >= zeros
        assert torch.all(getattr(lenet, n).weight[getattr(lenet, n).weight_mask == 0] == 0)


def test_cancel_is_honoured_within_one_batch_and_restores(lenet, tiny_data):
    _pruned(lenet)
    before = {k: v.clone() for k, v in lenet.state_dict().items()}
    cancel = CancelToken()
    seen = []

    def on_step(step, loss):
        seen.append(step)
        if step == 3:
            cancel.cancel()
    result = finetune(lenet, tiny_data, FinetuneSpec(epochs=5, batch_size=16), cancel=cancel,
                      on_step=on_step)
    assert result.cancelled and seen == [1, 2, 3]
    assert all(torch.equal(before[k], v) for k, v in lenet.state_dict().items())


def test_early_stop(lenet, tiny_data):
    result = finetune(lenet, tiny_data, FinetuneSpec(epochs=20, lr=1e-9, patience=1, batch_size=64))
    assert result.stopped_early and len(result.epochs) < 20


def test_kept_epoch_is_chosen_on_validation_never_on_test(lenet, tiny_data):
    # test labels scrambled: its accuracy curve differs from validation's, so choosing on test
    # would (with these seeds) keep another epoch; the kept weights must be the best-validation ones
    g = torch.Generator().manual_seed(1)
    inputs, labels = tiny_data.test.tensors
    tiny_data.test = TensorDataset(inputs, labels[torch.randperm(len(labels), generator=g)])
    _pruned(lenet, 0.5)
    result = finetune(lenet, tiny_data, FinetuneSpec(epochs=6, optimizer="adam", lr=1e-3,
                                                     batch_size=32))
    val_acc = [e.val.accuracy for e in result.epochs]
    test_acc = [e.test.accuracy for e in result.epochs]
    assert result.best_epoch == 1 + val_acc.index(max(val_acc))
    assert result.best_epoch != 1 + test_acc.index(max(test_acc))
    kept = evaluate(lenet, tiny_data.loader("val", 256), 10).accuracy
    assert kept == pytest.approx(max(val_acc))


def test_without_validation_the_last_epoch_is_kept_and_nothing_stops_early(lenet, tiny_data):
    tiny_data.train = ConcatDataset([tiny_data.train, tiny_data.val])
    tiny_data.val = None
    result = finetune(lenet, tiny_data, FinetuneSpec(epochs=3, lr=1e-9, patience=1, batch_size=64))
    assert [e.epoch for e in result.epochs] == [1, 2, 3] and not result.stopped_early
    assert result.best_epoch == 3 and all(e.val is None for e in result.epochs)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_export_loads_strictly_into_plain_lenet(tmp_path, lenet, suffix):
    _pruned(lenet, 0.7)
    path = tmp_path / f"pruned{suffix}"
    paths = export_model(lenet, path, include_masks=True, report={"note": "x"})
    assert [p.name for p in paths] == [f"pruned{suffix}", f"pruned.masks{suffix}", "pruned.report.json"]
    if suffix == ".pt":
        state = torch.load(path, weights_only=True)
    else:
        from safetensors.torch import load_file
        state = load_file(str(path))
    fresh = LeNet()
    fresh.load_state_dict(state, strict=True)
    x = torch.randn(3, 1, 28, 28)
    assert torch.allclose(fresh(x), lenet(x), atol=1e-6)
    assert (fresh.fc1.weight == 0).float().mean() == pytest.approx(0.7, abs=0.01)
    assert not list(tmp_path.glob(".*.tmp"))


def test_export_never_overwrites_the_source(tmp_path, lenet):
    source = tmp_path / "original.pt"
    torch.save(lenet.state_dict(), source)
    original_bytes = source.read_bytes()
    with pytest.raises(ExportError, match="one of the model.s source files"):
        export_model(lenet, source, protected=(source,))
    assert source.read_bytes() == original_bytes


def test_failed_export_leaves_no_partial_file(tmp_path, lenet, monkeypatch):
    target = tmp_path / "out.pt"
    target.write_bytes(b"previous export")

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        export_model(lenet, target)
    assert target.read_bytes() == b"previous export"
    assert list(tmp_path.iterdir()) == [target]


def test_model_can_be_pruned_again_after_a_cancelled_finetune(lenet, tiny_data):
    """A cancel mid-epoch must not leave masked weights tied to the training graph."""
    import copy
    _pruned(lenet, 0.5)
    cancel = CancelToken()
    finetune(lenet, tiny_data, FinetuneSpec(epochs=2, batch_size=16), cancel=cancel,
             on_step=lambda step, loss: cancel.cancel())
    copy.deepcopy(lenet)  # raised "Only Tensors created explicitly by the user..." before
    prune_model(lenet, PruneSpec(sparsity=0.7), PruneContext(lenet))
    assert float((lenet.fc1.weight == 0).float().mean()) == pytest.approx(0.7, abs=0.01)
    assert torch.equal(lenet.fc1.weight, lenet.fc1.weight_orig * lenet.fc1.weight_mask)


def test_exports_get_ordinary_file_permissions(tmp_path, lenet):
    """The temporary file behind an atomic write is private; the export must not stay that way."""
    import os
    umask = os.umask(0o022)
    try:
        path = export_model(lenet, tmp_path / "m.pt", report={})[0]
    finally:
        os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o644
    assert (path.with_name("m.report.json").stat().st_mode & 0o777) == 0o644


def test_export_never_overwrites_a_channel_pruned_sources_shapes_file(tmp_path):
    """A channel-pruned model opened from small.pt + small.shapes.json, pruned again and exported
    as small.pth would write small.shapes.json: refused before anything is written."""
    from engine.config import DataSpec, ExportSpec, MetricsSpec, ModelSpec, StructuredSpec
    from engine.session import Session
    first = Session.open(ModelSpec(), DataSpec(), MetricsSpec(measure_latency=False))
    first.remove_channels(StructuredSpec(ratio=0.5))
    first.export(ExportSpec(str(tmp_path / "small.pt"), formats=["shapes"], report=False))
    shapes = tmp_path / "small.shapes.json"
    before = shapes.read_bytes()
    again = Session.open(ModelSpec(source="state_dict", path=str(tmp_path / "small.pt"),
                                   shapes=str(shapes)), DataSpec(),
                         MetricsSpec(measure_latency=False))
    again.remove_channels(StructuredSpec(ratio=0.5))
    with pytest.raises(ExportError, match="one of the model's source files"):
        again.export(ExportSpec(str(tmp_path / "small.pth"), formats=["shapes"], report=False))
    assert shapes.read_bytes() == before and not (tmp_path / "small.pth").exists()


def test_export_never_writes_inside_the_source_folder(tmp_path, lenet):
    folder = tmp_path / "hf_model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"original weights")
    with pytest.raises(ExportError, match="inside the model's source folder"):
        export_model(lenet, folder / "model.safetensors", protected=(folder,))
    with pytest.raises(ExportError, match="inside the model's source folder"):
        export_model(lenet, folder / "sub" / "x.pt", protected=(folder,))
    assert (folder / "model.safetensors").read_bytes() == b"original weights"
    export_model(lenet, tmp_path / "beside.pt", protected=(folder,))   # next to it is fine


# ------------------------------------------------------------------ masks held in place while training

def _effective(model) -> dict:
    from engine.pruning.targets import prunable_targets
    return {t.name: t.weight().detach().clone() for t in prunable_targets(model)}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_weight_orig_in_place_gives_torchs_masked_training(lenet, tiny_data, optimizer):
    """Fine-tuning trains ``weight_orig`` itself with its pruned entries held at zero (no masked
    copy per forward); the result is torch.nn.utils.prune's own masked training, number for
    number. (A schedule's ``after_step`` keeps torch's way: that run is the reference.)"""
    import copy
    _pruned(lenet, 0.6)
    reference = copy.deepcopy(lenet)
    spec = FinetuneSpec(epochs=1, optimizer=optimizer, lr=0.01, batch_size=32,
                        max_batches_per_epoch=4, weight_decay=1e-3)
    during = []

    masks = {m: lenet.get_submodule(m).weight_mask.clone() for m in ("conv1", "fc1")}

    def look(_step, _loss):
        # weight is weight_orig, no product; the masks are booleans meanwhile
        during.append(all(lenet.get_submodule(m).weight is getattr(lenet.get_submodule(m),
                                                                     "weight_orig")
                          and lenet.get_submodule(m).weight_mask.dtype == torch.bool
                          for m in ("conv1", "fc1")))
    finetune(lenet, tiny_data, spec, seed=3, on_step=look)
    finetune(reference, tiny_data, spec, seed=3, after_step=lambda _m: None)
    assert during and all(during)   # while training: weight is weight_orig, no product
    ours, theirs = _effective(lenet), _effective(reference)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.allclose(ours[name], theirs[name], atol=1e-6), name
    for name in ("conv1", "fc1"):   # torch's structure is back: hook, mask, a product as weight
        module = lenet.get_submodule(name)
        assert module.weight is not module.weight_orig
        assert any(isinstance(h, torch.nn.utils.prune.BasePruningMethod)
                   for h in module._forward_pre_hooks.values())
        assert torch.all(module.weight[module.weight_mask == 0] == 0)
        assert torch.equal(module.weight, module.weight_orig * module.weight_mask)
        assert module.weight_mask.dtype == torch.float32
        assert torch.equal(module.weight_mask, masks[name])


def test_a_soft_mask_keeps_torchs_masked_weights(lenet, tiny_data):
    """A mask with values other than 0 and 1 would be applied again at every step: such a model
    trains the way torch.nn.utils.prune does."""
    torch.nn.utils.prune.custom_from_mask(lenet.fc1, "weight",
                                          torch.full_like(lenet.fc1.weight, 0.5))
    seen = []
    finetune(lenet, tiny_data, FinetuneSpec(epochs=1, batch_size=32, max_batches_per_epoch=2),
             on_step=lambda _s, _l: seen.append(lenet.fc1.weight is lenet.fc1.weight_orig))
    assert seen == [False, False]
    assert torch.allclose(lenet.fc1.weight, lenet.fc1.weight_orig * 0.5)


@pytest.mark.parametrize("validation", [True, False], ids=["validation", "no-validation"])
@pytest.mark.parametrize("epochs", [1, 3])
def test_the_kept_epoch_is_that_epochs_weights_and_the_last_one_is_not_copied(
        lenet, tiny_data, monkeypatch, validation, epochs):
    import engine.finetune as finetune_module
    if not validation:
        tiny_data.train = ConcatDataset([tiny_data.train, tiny_data.val])
        tiny_data.val = None
    _pruned(lenet, 0.5)
    at_epoch_end = {}
    copies = []
    real_copy = finetune_module._StateCopy

    def counted(model):
        copies.append(1)
        return real_copy(model)
    monkeypatch.setattr(finetune_module, "_StateCopy", counted)
    result = finetune(lenet, tiny_data, FinetuneSpec(epochs=epochs, optimizer="adam", lr=1e-3,
                                                     batch_size=32, max_batches_per_epoch=4),
                      on_epoch=lambda e: at_epoch_end.setdefault(
                          e.epoch, {k: v.clone() for k, v in lenet.state_dict().items()}))
    kept = at_epoch_end[result.best_epoch]
    assert all(torch.equal(v, kept[k]) for k, v in lenet.state_dict().items())
    # one epoch: the live model is the result, nothing is copied; more: at most one copy (of an
    # earlier epoch that Stop or a worse later epoch goes back to), overwritten in place
    assert len(copies) == 0 if epochs == 1 else len(copies) <= 1

"""The instant size and compute preview: predicted from shapes, it must equal what the comparison
table then measures on the pruned model, and answer fast enough for a slider."""
import copy
import gc
import mmap
import statistics
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

import engine.kept

from engine.config import PruneSpec, StructuredSpec
from engine.metrics import count_macs, count_parameters, storage_bytes
from engine.models.architectures import build_architecture
from engine.preview import SizePreview
from engine.pruning.apply import prune_model
from engine.pruning.base import PruneContext
from engine.pruning.threshold import count_for_fraction
from engine.structured.remove import prune_channels

FIELDS = ("params", "nonzero_params", "dense_bytes", "sparse_bytes", "macs", "effective_macs")


def measured(model, example) -> dict[str, int]:
    params, nonzero = count_parameters(model)
    dense, sparse = storage_bytes(model)
    macs, effective = count_macs(model, example)
    return dict(params=params, nonzero_params=nonzero, dense_bytes=dense, sparse_bytes=sparse,
                macs=macs, effective_macs=effective)


def predicted(prediction) -> dict[str, int]:
    return {f: getattr(prediction, f) for f in FIELDS}


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    demo = build_architecture("lenet").eval()
    resnet = build_architecture("resnet18", 10).eval()
    return {"demo": (demo, torch.randn(1, 1, 28, 28)), "resnet18": (resnet, torch.randn(1, 3, 64, 64))}


@pytest.fixture(scope="module")
def previews(models):
    return {name: SizePreview.build(model, x) for name, (model, x) in models.items()}


@pytest.mark.parametrize("name", ["demo", "resnet18"])
@pytest.mark.parametrize("spec", [StructuredSpec(ratio=0.5), StructuredSpec(ratio=0.3, round_to=8)],
                         ids=["half", "30pc-round8"])
def test_channel_removal_preview_equals_measurement(models, previews, name, spec):
    model, x = models[name]
    prediction = previews[name].channels(spec)
    assert prediction.exact and prediction.macs < measured(model, x)["macs"]
    pruned = prune_channels(model, x, spec).model
    truth = measured(pruned, x)
    # the file's zip records are aligned to 64 bytes: with new shapes that padding may move
    tensors = len(pruned.state_dict())
    assert abs(prediction.dense_bytes - truth.pop("dense_bytes")) < 64 * tensors
    assert {k: v for k, v in predicted(prediction).items() if k != "dense_bytes"} == truth


@pytest.mark.parametrize("name", ["demo", "resnet18"])
@pytest.mark.parametrize("spec", [PruneSpec(sparsity=0.6), PruneSpec(sparsity=0.7, scope="global"),
                                  PruneSpec(granularity="filter", sparsity=0.3)],
                         ids=["local", "global", "filter"])
def test_mask_preview_equals_measurement(models, previews, name, spec):
    model, x = models[name]
    pruned = copy.deepcopy(model)
    prune_model(pruned, spec, PruneContext(pruned))
    prediction = previews[name].masks(spec)
    assert prediction.exact
    assert predicted(prediction) == measured(pruned, x)


def test_per_layer_ratios_are_previewed(models, previews):
    model, x = models["demo"]
    spec = PruneSpec(sparsity=0.2, per_layer={"conv1.weight": 0.9, "fc1.weight": 0.5})
    pruned = copy.deepcopy(model)
    prune_model(pruned, spec, PruneContext(pruned))
    assert predicted(previews["demo"].masks(spec)) == measured(pruned, x)


def test_a_global_split_by_other_scores_is_marked_as_an_estimate(previews):
    prediction = previews["demo"].masks(PruneSpec(method="random", sparsity=0.5, scope="global"))
    assert not prediction.exact and "global scope" in prediction.note
    assert not previews["demo"].channels(StructuredSpec(ratio=0.5, scope="global")).exact


def test_predictions_answer_within_100_ms(previews):
    """A slider asks on every move: after the first call of a kind, each answer is arithmetic."""
    preview = previews["resnet18"]
    preview.sort_magnitudes()   # the worker does this right after build
    for spec in (PruneSpec(sparsity=0.5), PruneSpec(sparsity=0.5, scope="global"),
                 StructuredSpec(ratio=0.5)):
        ask = preview.masks if isinstance(spec, PruneSpec) else preview.channels
        ask(spec)
        times = []
        for ratio in (0.1, 0.3, 0.5, 0.7, 0.9):
            started = time.perf_counter()
            ask(type(spec)(**{**spec.__dict__, ("sparsity" if isinstance(spec, PruneSpec)
                                                else "ratio"): ratio}))
            times.append(time.perf_counter() - started)
        assert statistics.median(times) < 0.1, times


@pytest.mark.parametrize("name", ["demo", "resnet18"])
def test_a_preview_follows_new_weights_without_tracing_again(models, previews, name):
    """After a mask prune the window reuses the traced preview with the new weights: its
    predictions from there equal a fresh build's and what is then measured."""
    model, x = models[name]
    pruned = copy.deepcopy(model)
    prune_model(pruned, PruneSpec(sparsity=0.5, scope="global"), PruneContext(pruned))
    held = [p.is_meta for p in previews[name].model.parameters()]
    reused = previews[name].for_weights_of(pruned)
    fresh = SizePreview.build(pruned, x)
    assert reused is not None and reused.ops is previews[name].ops   # the trace was not redone
    # structure and sorted magnitudes only, as the window holds it; the old preview unchanged
    assert all(p.is_meta for p in reused.model.parameters())
    assert [p.is_meta for p in previews[name].model.parameters()] == held
    spec = PruneSpec(sparsity=0.8, scope="global")
    assert predicted(reused.masks(spec)) == predicted(fresh.masks(spec))
    assert predicted(reused.masks(PruneSpec(sparsity=0.5, scope="global"))) == measured(pruned, x)
    further = copy.deepcopy(pruned)
    prune_model(further, spec, PruneContext(further))
    assert predicted(reused.masks(spec)) == measured(further, x)


def test_a_preview_is_built_again_when_shapes_change(models, previews):
    model, x = models["resnet18"]
    smaller = prune_channels(model, x, StructuredSpec(ratio=0.5)).model
    assert previews["resnet18"].for_weights_of(smaller) is None


def resident_kib(path) -> int:
    """How much of the mappings of ``path`` is resident in this process (Linux)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:   # a mapping's header line
                inside = len(fields) >= 6 and fields[5] == str(path)
            elif inside and fields[0] == "Rss:":
                total += int(fields[1])
    return total


def test_sorted_magnitudes_at_full_size_are_mapped_from_a_file(models, monkeypatch, tmp_path):
    """Above the spill size the sorted magnitudes live in a file; the predictions are the same."""
    model, x = models["demo"]
    in_memory = SizePreview.build(model, x)
    in_memory.sort_magnitudes()
    monkeypatch.setattr(engine.kept, "SPILL_BYTES", 0)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    on_disk = SizePreview.build(model, x)
    on_disk.sort_magnitudes()
    assert on_disk._sorted_magnitudes.keys() == in_memory._sorted_magnitudes.keys()
    assert all(isinstance(v, np.memmap) for v in on_disk._sorted_magnitudes.values())
    assert all(np.array_equal(v, in_memory._sorted_magnitudes[k])
               for k, v in on_disk._sorted_magnitudes.items())
    (folder,) = tmp_path.iterdir()
    for sparsity in (0.1, 0.5, 0.93):
        spec = PruneSpec(sparsity=sparsity, scope="global")
        assert predicted(on_disk.masks(spec)) == predicted(in_memory.masks(spec))
        if hasattr(mmap, "MADV_DONTNEED") and sys.platform.startswith("linux"):
            # what the lookups read of the file is not left counted as the window's memory
            assert resident_kib(folder / "arrays.bin") == 0
    del on_disk
    gc.collect()
    engine.kept.wait_for_removals()
    assert not folder.exists()


@pytest.mark.parametrize("partition_at_most", [1 << 16, 0], ids=["partition", "bisect"])
@pytest.mark.parametrize("sparsity", [0.0, 0.01, 0.3, 0.5, 0.77, 0.999, 1.0])
def test_the_global_split_is_the_k_smallest_magnitudes_ties_in_flattened_order(
        sparsity, partition_at_most, monkeypatch):
    """Against a stable sort of every selected magnitude: layers with many equal values, zeros,
    values a bucket apart, and a subset of the layers selected; the threshold's bucket taken
    by a partition, and by bisection (as a crowded bucket is)."""
    import engine.preview
    monkeypatch.setattr(engine.preview, "_PARTITION_AT_MOST", partition_at_most)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 30), nn.ReLU(), nn.Linear(30, 50), nn.ReLU(),
                          nn.Linear(50, 7))
    with torch.no_grad():
        model[0].weight.copy_(torch.randint(-3, 4, model[0].weight.shape) * 0.25)   # ties, zeros
        model[2].weight.normal_()
        model[2].weight[:5] = 0.5   # equal to some of layer 0's
        model[4].weight.copy_(torch.randn(model[4].weight.shape) * 1e-30)   # tiny, own buckets
    preview = SizePreview.build(model, torch.randn(1, 40), channels=False)
    preview.sort_magnitudes()
    for names in (["0.weight", "2.weight", "4.weight"], ["4.weight", "0.weight"]):
        magnitudes = np.concatenate([model.get_parameter(n).detach().abs().reshape(-1).numpy()
                                     for n in names])
        k = count_for_fraction(len(magnitudes), sparsity)
        chosen = np.argsort(magnitudes, kind="stable")[:k]
        sizes = [model.get_parameter(n).numel() for n in names]
        owner = np.repeat(np.arange(len(names)), sizes)
        expected = {n: int((owner[chosen] == i).sum()) for i, n in enumerate(names)}
        assert preview._global_magnitude_split(names, sparsity) == expected

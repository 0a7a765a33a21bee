"""engine.kept: a copy of the model kept in a file at full size, mapped back for each use."""
import copy
import gc
import mmap
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import engine.kept
from engine.config import DataSpec, MetricsSpec, ModelSpec, PruneSpec
from engine.kept import ArrayFile, KeptModel, release_pages
from engine.pruning.targets import refresh_masked_weights
from engine.session import Session


class Tied(nn.Module):
    """Parameters, a frozen one, a persistent and a non-persistent buffer, a pruned layer (its
    masked ``weight`` is a tensor attribute) and a weight shared by two layers."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.body = nn.Linear(8, 8)
        self.norm = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 20, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("scale", torch.full((8,), 2.0), persistent=False)
        self.body.bias.requires_grad_(False)

    def forward(self, ids):
        return self.head(self.norm(self.body(self.embed(ids)).mean(1) * self.scale))


def _model():
    torch.manual_seed(0)
    model = Tied()
    prune.l1_unstructured(model.body, "weight", amount=0.5)
    model.norm.running_mean.add_(0.5)
    refresh_masked_weights(model)   # as the engine leaves every model it changed
    return model.eval()


def _ids():
    return torch.randint(0, 20, (4, 5), generator=torch.Generator().manual_seed(1))


def test_a_kept_file_gives_back_the_same_model_each_time(tmp_path):
    model = _model()
    kept = KeptModel(model, spill_bytes=0, folder=tmp_path)
    assert kept.on_disk and kept.path.is_file() and kept.path.parent.parent == tmp_path
    first = kept.model()
    assert first is not kept.model()   # each use maps its own module
    with torch.no_grad():
        assert torch.equal(first(_ids()), model(_ids()))
    assert first.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(first.state_dict()[key], value), key
    assert torch.equal(first.scale, model.scale)              # non-persistent buffer
    assert torch.equal(first.body.weight, model.body.weight)  # the masked weight, an attribute
    assert first.head.weight is first.embed.weight            # still shared
    assert isinstance(first.body.weight_orig, nn.Parameter)
    assert not first.body.bias.requires_grad and first.body.weight_orig.requires_grad
    assert [m.training for m in first.modules()] == [m.training for m in model.modules()]
    assert prune.is_pruned(first)


def test_changing_a_use_leaves_the_kept_copy_and_the_source_alone(tmp_path):
    model = _model()
    before = copy.deepcopy(model.state_dict())
    kept = KeptModel(model, spill_bytes=0, folder=tmp_path)
    use = kept.model()
    with torch.no_grad():
        for p in use.parameters():
            p.add_(1.0)
    use.norm.running_mean.zero_()
    again = kept.model()
    for key, value in before.items():
        assert torch.equal(again.state_dict()[key], value), key
        assert torch.equal(model.state_dict()[key], value), key


def test_the_file_goes_with_the_kept_copy(tmp_path, monkeypatch):
    kept = KeptModel(_model(), spill_bytes=0, folder=tmp_path)
    folder = kept.path.parent
    use = kept.model()
    removed_on = []
    real_rmtree = shutil.rmtree
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: (
        removed_on.append(threading.current_thread()), real_rmtree(*a, **k)))
    del kept
    gc.collect()
    engine.kept.wait_for_removals()
    assert not folder.exists()
    # a big file's removal waits for the disk: never on the thread that let the copy go (the
    # window's, for an old size preview)
    assert removed_on and threading.current_thread() not in removed_on
    with torch.no_grad():   # a use taken before still runs: its pages stay mapped
        assert use(_ids()).shape == (4, 20)


def test_a_small_model_stays_in_memory(tmp_path):
    kept = KeptModel(_model(), folder=tmp_path)
    assert not kept.on_disk and kept.path is None and list(tmp_path.iterdir()) == []
    assert kept.model() is kept.model()


def test_a_session_with_its_original_on_disk(monkeypatch, tmp_path):
    """The whole session flow with the original in a file: measure, prune, back, revert."""
    monkeypatch.setattr(engine.kept, "SPILL_BYTES", 0)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    session = Session.open(ModelSpec(), DataSpec(), MetricsSpec(measure_latency=False))
    assert session._original.on_disk
    opened = copy.deepcopy(session.model.state_dict())
    session.measure_current()
    session.prune(PruneSpec(method="l1", scope="global", sparsity=0.6))
    session.record_step("pruned", "prune")
    session.measure_current()
    assert session.current_metrics.nonzero_params < session.original_metrics.nonzero_params
    for key, value in opened.items():   # pruning the live model did not reach the kept one
        assert torch.equal(session.original.state_dict()[key], value), key
    session.back()
    assert not prune.is_pruned(session.model)
    assert session._original.path.is_file() and session._original.path.parent.parent == tmp_path
    session.prune(PruneSpec(method="l1", scope="global", sparsity=0.6))
    session.revert()
    for key, value in opened.items():
        assert torch.equal(session.model.state_dict()[key], value), key


@pytest.mark.skipif(not (hasattr(mmap, "MADV_DONTNEED") and sys.platform.startswith("linux")),
                    reason="reads /proc/self/smaps; madvise is Unix-only")
def test_pages_read_from_an_array_file_are_given_back(tmp_path):
    from tests.test_preview import resident_kib
    arrays = ArrayFile(tmp_path)
    values = np.arange(4 << 20, dtype=np.int32)   # 16 MB
    arrays.append("a", values)
    arrays.append("b", values[::-1].copy())
    mapped = arrays.mapped()
    (path,) = tmp_path.glob("*/arrays.bin")
    assert int(mapped["a"].sum(dtype=np.int64)) == int(values.sum(dtype=np.int64))   # read all
    assert resident_kib(path) > 8 << 10
    release_pages([mapped["a"], values])   # an array in memory beside it is left alone
    assert resident_kib(path) == 0
    assert np.array_equal(mapped["a"], values) and np.array_equal(mapped["b"], values[::-1])


def test_folders_of_copies_dropped_at_exit_are_removed(tmp_path):
    """Python waits for the removal threads at exit, and removes what is dropped after that at
    once: nothing is left in the temporary folder by a run that ends straight after dropping."""
    script = (
        "import sys, torch\n"
        "from engine.kept import KeptModel\n"
        "keep = KeptModel(torch.nn.Linear(300, 300), spill_bytes=0, folder=sys.argv[1])\n"
        "drop = KeptModel(torch.nn.Linear(300, 300), spill_bytes=0, folder=sys.argv[1])\n"
        "del drop\n")   # one dropped before exit, one still held when Python ends
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True,
                   cwd=Path(__file__).resolve().parent.parent)
    assert list(tmp_path.iterdir()) == []

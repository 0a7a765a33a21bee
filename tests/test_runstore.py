"""The run store: runs survive restarts, restore bit-identically, and a killed writer never damages
the store."""
import copy
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn
from torch.nn.utils import prune

from engine.config import StructuredSpec
from engine.models.lenet import LeNet
from engine.pruning.masks import global_magnitude_prune
from engine.runstore import RunStore, RunStoreError, capture_state, restore_model
from engine.structured.remove import prune_channels

ROOT = Path(__file__).resolve().parents[1]


def masked_lenet():
    torch.manual_seed(0)
    original = LeNet().eval()
    model = copy.deepcopy(original)
    pairs = [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():   # as the engine prunes; then something fine-tuning would change
        global_magnitude_prune(pairs, 0.7)
        model.fc1.bias.add_(0.125)
    return original, model


def assert_same_state(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and torch.equal(sa[key], sb[key]), key


def test_masked_run_restores_bit_identical_with_masks_installed(tmp_path):
    original, model = masked_lenet()
    with RunStore(tmp_path / "store") as store:
        run_id = store.add("l1 global 70%", model, recipe={"prune": {"sparsity": 0.7}},
                           metrics={"accuracy": 0.5})
    # a new process would open the folder again: so does this
    with RunStore(tmp_path / "store") as store:
        [run] = store.runs()
        assert run.id == run_id and run.label == "l1 global 70%" and run.metrics == {"accuracy": 0.5}
        restored = store.restore(run_id, original)
    assert_same_state(model, restored)
    # the masks are live parametrizations again: the pruned weights stay zero under training
    assert prune.is_pruned(restored)
    assert torch.equal(restored.fc1.weight_mask, model.fc1.weight_mask)
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(model(x), restored(x))
    # the original was not touched
    assert not prune.is_pruned(original)


def test_channel_pruned_run_restores_its_smaller_architecture(tmp_path):
    torch.manual_seed(0)
    original = torchvision.models.resnet18(num_classes=10).eval()
    example = torch.randn(1, 3, 32, 32)
    smaller = prune_channels(original, example, StructuredSpec(ratio=0.5)).model.eval()
    assert smaller.conv1.out_channels < original.conv1.out_channels
    with RunStore(tmp_path) as store:
        run_id = store.add("channels -50%", smaller)
        restored = store.restore(run_id, original)
    assert restored.conv1.out_channels == smaller.conv1.out_channels
    assert_same_state(smaller, restored)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(smaller(x), restored(x))


def test_states_are_compressed_only_where_it_pays(tmp_path):
    original, masked = masked_lenet()
    with RunStore(tmp_path) as store:
        sparse_id = store.add("masked", masked)
        dense_id = store.add("dense", original)
        sparse, dense = store.get(sparse_id), store.get(dense_id)
    assert sparse.state_file.endswith(".gz") and sparse.state_meta["compressed"]
    assert not dense.state_file.endswith(".gz") and not dense.state_meta["compressed"]
    # the compressed file really is smaller than the raw safetensors bytes
    from safetensors.torch import save
    raw = len(save(capture_state(masked)[0]))
    assert (tmp_path / "states" / sparse.state_file).stat().st_size < raw * 0.9


def test_a_damaged_state_is_refused_with_its_name(tmp_path):
    original, model = masked_lenet()
    with RunStore(tmp_path) as store:
        run_id = store.add("run", model)
        state = tmp_path / "states" / store.get(run_id).state_file
        data = bytearray(state.read_bytes())
        data[len(data) // 2] ^= 0xFF
        state.write_bytes(bytes(data))
        with pytest.raises(RunStoreError, match="damaged"):
            store.restore(run_id, original)


def test_a_state_from_another_model_is_refused(tmp_path):
    original, model = masked_lenet()
    other = torchvision.models.resnet18(num_classes=10)
    tensors, meta = capture_state(model)
    with pytest.raises(RunStoreError, match="does not fit"):
        restore_model(other, tensors, meta)


def test_a_killed_writer_loses_at_most_the_run_being_written(tmp_path):
    """A process adding runs as fast as it can is killed with SIGKILL; the store opens, passes
    SQLite's integrity check, and every run it lists restores."""
    store_dir = tmp_path / "store"
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(ROOT)!r})
        torch.set_num_threads(1)
        from engine.models.lenet import LeNet
        from engine.runstore import RunStore
        store = RunStore({str(store_dir)!r})
        i = 0
        while True:
            torch.manual_seed(i)
            store.add(f"run {{i}}", LeNet())
            i += 1
            print(i, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(5):   # let it write a few runs, then kill it in the middle of the next
            assert proc.stdout.readline(), "the writer died on its own"
        time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with RunStore(store_dir) as store:
        assert store.integrity_ok()
        runs = store.runs()
        assert len(runs) >= 5
        for run in runs:
            torch.manual_seed(int(run.label.split()[1]))
            expected = LeNet()
            assert_same_state(expected, store.restore(run.id, LeNet()))
        store.prune_orphans()
        named = {r.state_file for r in runs}
        assert {f.name for f in (store_dir / "states").iterdir()} == named


def test_state_compressed_in_pieces_reads_back_and_a_stop_writes_nothing(tmp_path, monkeypatch):
    import gzip

    from engine import runstore
    from engine.progress import Cancelled, CancelToken
    raw = bytes(range(256)) * 5000 + bytes(3_000_000)
    monkeypatch.setattr(runstore, "GZIP_PIECE", 100_000)   # many pieces
    assert gzip.decompress(runstore._gzip(raw)) == raw
    model = torch.nn.Linear(50, 20)
    token = CancelToken()
    token.cancel()
    with RunStore(tmp_path / "store") as store:
        with pytest.raises(Cancelled):
            store.add("stopped", model, cancel=token)
        assert store.runs() == []
        assert list((tmp_path / "store").rglob("*.safetensors*")) == []


def test_state_bytes_are_a_safetensors_file_of_every_dtype_the_store_keeps():
    """The store writes safetensors piece by piece (engine.runstore._safetensors_bytes);
    safetensors' own reader reads it back exactly, for each dtype a state holds."""
    from safetensors.torch import load
    from engine.runstore import _safetensors_bytes
    torch.manual_seed(0)
    tensors = {"w": torch.randn(3, 5), "half": torch.randn(7).half(), "bf": torch.randn(2, 2).bfloat16(),
               "mask": torch.rand(4, 4) > 0.5, "count": torch.tensor(17), "idx": torch.arange(9),
               "empty": torch.zeros(0, 3), "big": torch.randn(1 << 21)}   # 8 MB: several pieces
    data = _safetensors_bytes(tensors)
    back = load(bytes(data))
    assert set(back) == set(tensors)
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype and back[name].shape == tensor.shape
        assert torch.equal(back[name], tensor), name


def test_state_is_streamed_to_its_file_not_built_in_memory(tmp_path):
    """Storing a run writes the state file piece by piece: Python never holds the file's bytes
    (or its gzip) whole. Old code: the safetensors bytes, the gzip pieces and their join, about
    2.5x the state; now a few pieces of COPY_PIECE bytes, whatever the state's size."""
    from engine.runstore import COPY_PIECE
    import tracemalloc
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2000, 3000), torch.nn.Linear(3000, 2000))
    prune.l1_unstructured(model[0], "weight", amount=0.9)   # compressible: stored gzipped
    state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    with RunStore(tmp_path) as store:
        tracemalloc.start()
        run_id = store.add("big", model)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        run = store.get(run_id)
        assert run.state_meta["compressed"]
        restored = store.restore(run_id, torch.nn.Sequential(torch.nn.Linear(2000, 3000),
                                                             torch.nn.Linear(3000, 2000)))
    bound = 4 * COPY_PIECE   # a piece, its compressed copy, zlib's output buffer
    assert state_bytes > 3 * bound and peak < bound, (peak, state_bytes)
    for key, value in model.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key


def test_a_stop_while_the_state_is_written_leaves_no_file_and_no_row(tmp_path, monkeypatch):
    from engine import runstore
    from engine.progress import Cancelled, CancelToken

    class StopAfter(CancelToken):
        """Pressed after a few pieces have gone to the file."""
        def __init__(self, checks: int) -> None:
            super().__init__()
            self.left = checks

        def raise_if_cancelled(self) -> None:
            self.left -= 1
            if self.left == 0:
                self.cancel()
            super().raise_if_cancelled()
    monkeypatch.setattr(runstore, "COPY_PIECE", 64 * 1024)
    model = torch.nn.Linear(1000, 1000)   # 4 MB: some 60 pieces
    with RunStore(tmp_path / "store") as store:
        with pytest.raises(Cancelled):
            store.add("stopped", model, cancel=StopAfter(20))
        assert store.runs() == []
        assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()
                and p.parent.name == "states"] == []

""""Why is it not faster?": the sweep, the storage format and the verdict for a masked-only and a
channel-pruned model."""
import copy

import torch

from engine.config import MetricsSpec, PruneSpec, StructuredSpec
from engine.explain import Explanation, SweepPoint, explain, verdict
from engine.models.architectures import build_architecture
from engine.models.sources import LoadedModel
from engine.pruning.apply import prune_model
from engine.pruning.base import PruneContext
from engine.session import Session
from engine.structured.remove import prune_channels


def lenet():
    torch.manual_seed(0)
    return build_architecture("lenet").eval()


def example_for(batch):
    return torch.randn(batch, 1, 28, 28)


def test_masked_only_model_is_explained_as_dense_zeros():
    original = lenet()
    masked = copy.deepcopy(original)
    prune_model(masked, PruneSpec(sparsity=0.5), PruneContext(masked))
    e = explain(original, masked, example_for, batches=(1, 4), runs=3, warmup=1)
    assert [(p.batch, p.layout) for p in e.points] == [
        (1, "NCHW"), (1, "channels_last"), (4, "NCHW"), (4, "channels_last")]
    assert all(p.original_ms > 0 and p.current_ms > 0 for p in e.points)
    assert e.storage == "dense zeros" and e.macs[0] == e.macs[1] and e.params[0] == e.params[1]
    text = " ".join(e.verdict)
    assert text.startswith(f"Only weights were zeroed (50% of them): every tensor keeps its shape, "
                           f"so dense kernels do the same {e.macs[1]:,} MACs (")
    assert "at batch 4 in" in text and "Remove channels (structured pruning)" in text
    if not torch.cuda.is_available():
        assert "no 2:4 sparse kernels (this machine has no CUDA device" in e.sparse_kernels
        assert "none exist here for unstructured zeros" in text
    assert any("storage: dense zeros" in line for line in e.lines())


def test_channel_pruned_model_is_explained_with_its_macs_reduction_and_speedup():
    original = lenet()
    pruned = prune_channels(original, example_for(1), StructuredSpec(ratio=0.5)).model
    e = explain(original, pruned, example_for, batches=(1, 16), runs=3, warmup=1)
    assert e.storage == "removed" and e.macs_reduction > 2.5
    best = e.best(16)
    assert e.verdict[0] == (f"Channels were removed: {e.macs_reduction:.1f}x fewer MACs, "
                            f"{best.speedup:.1f}x faster at batch 16 in "
                            f"{'channels-last' if best.layout == 'channels_last' else 'NCHW'}.")


def _explanation(points, storage="removed", macs=(400, 100)):
    return Explanation(points, "cpu", 1, "test", storage, "", "no 2:4 sparse kernels",
                       (1000, 250), (1000, 250), macs, macs)


def test_verdict_says_when_call_overhead_dominates_and_which_layout_to_deploy():
    e = _explanation([SweepPoint(1, "NCHW", 1.0, 0.9), SweepPoint(1, "channels_last", 1.2, 1.0),
                      SweepPoint(16, "NCHW", 40.0, 20.0), SweepPoint(16, "channels_last", 30.0, 8.0)])
    lines = verdict(e)
    assert lines[0] == "Channels were removed: 4.0x fewer MACs, 3.8x faster at batch 16 in channels-last."
    assert not any(line.startswith("The speedup is below") for line in lines)
    assert "At batch 1 the call overhead dominates: 1.11x (0.90 ms vs 1.00 ms)." in lines
    assert lines[-1] == "At batch 16 the pruned model runs 2.50x faster in channels-last: deploy it that way."
    slow = verdict(_explanation([SweepPoint(16, "", 10.0, 8.0)]))
    assert slow[1].startswith("The speedup is below the MACs reduction (1.25x vs 4.00x)")
    assert verdict(_explanation([], storage="dense", macs=(400, 400))) == [
        "The model has not been pruned: nothing to speed up."]


def test_session_explains_token_models_in_one_layout(tiny_data):
    loaded = LoadedModel(lenet(), "LeNet")
    session = Session(loaded, tiny_data, MetricsSpec(latency_runs=3, latency_warmup=1))
    session.remove_channels(StructuredSpec(ratio=0.5))
    e = session.explain(batches=(1, 4))
    assert {p.layout for p in e.points} == {"NCHW", "channels_last"} and e.storage == "removed"

    class Tokens(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.head = torch.nn.Embedding(50, 8), torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.embed(x).mean(1))

    model = Tokens().eval()
    e = explain(model, copy.deepcopy(model), lambda b: torch.randint(0, 50, (b, 6)),
                batches=(1, 4), runs=2, warmup=1)
    assert [p.layout for p in e.points] == ["", ""] and e.storage == "dense"

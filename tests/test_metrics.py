import copy

import pytest
import torch

from engine.config import PruneSpec
from engine.metrics import (ModelMetrics, comparison_table, count_macs, count_parameters, evaluate,
                            format_table, measure_latency, storage_bytes, _scores)
from engine.pruning.apply import prune_model
from engine.pruning.base import PruneContext

LENET_PARAMS = 6 * 25 + 6 + 16 * 6 * 25 + 16 + 256 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10
# conv1: 24*24*6 outputs x 25; conv2: 8*8*16 x 150; fcs
LENET_MACS = 24 * 24 * 6 * 25 + 8 * 8 * 16 * 150 + 256 * 120 + 120 * 84 + 84 * 10


def test_parameter_counts_follow_masks(lenet):
    assert count_parameters(lenet) == (LENET_PARAMS, LENET_PARAMS)
    prune_model(lenet, PruneSpec(sparsity=0.5, include=["fc1.weight"]), PruneContext(lenet))
    total, nonzero = count_parameters(lenet)
    assert total == LENET_PARAMS  # masks add buffers, not parameters
    assert nonzero == LENET_PARAMS - 256 * 120 // 2


def test_sizes(lenet):
    dense, sparse = storage_bytes(lenet)
    assert dense > LENET_PARAMS * 4   # the file: tensor data plus the zip container and keys
    assert sparse == LENET_PARAMS * 4  # nothing is zero: bitmap storage would be larger
    prune_model(lenet, PruneSpec(sparsity=0.9), PruneContext(lenet))
    dense2, sparse2 = storage_bytes(lenet)
    assert dense2 == dense and sparse2 < dense * 0.3


def test_macs_dense_and_effective(lenet):
    example = torch.randn(1, 1, 28, 28)
    dense, effective = count_macs(lenet, example)
    assert dense == LENET_MACS and effective == LENET_MACS
    prune_model(lenet, PruneSpec(sparsity=0.5, include=["fc1.weight"]), PruneContext(lenet))
    dense2, effective2 = count_macs(lenet, example)
    assert dense2 == LENET_MACS
    assert effective2 == LENET_MACS - 256 * 120 // 2


def test_scores_from_confusion():
    # rows: true class, columns: predicted
    confusion = torch.tensor([[3, 1], [0, 4]])
    r = _scores(confusion, loss_sum=8.0, n=8)
    assert r.accuracy == pytest.approx(7 / 8)
    p0, p1 = 3 / 3, 4 / 5
    r0, r1 = 3 / 4, 4 / 4
    f = lambda p, q: 2 * p * q / (p + q)
    assert r.precision == pytest.approx((p0 + p1) / 2)
    assert r.recall == pytest.approx((r0 + r1) / 2)
    assert r.f1 == pytest.approx((f(p0, r0) + f(p1, r1)) / 2)
    assert r.loss == pytest.approx(1.0)


def test_evaluate_counts_every_sample(lenet, tiny_data):
    r = evaluate(lenet, tiny_data.loader("test", 50), 10)
    assert r.samples == 128 and 0 <= r.accuracy <= 1


def test_latency_is_measured(lenet):
    ms, throughput = measure_latency(lenet, torch.randn(4, 1, 28, 28), runs=5, warmup=1)
    assert ms > 0 and throughput == pytest.approx(4 / (ms / 1000))


def test_table_ratios():
    a = ModelMetrics(accuracy=0.98, params=100, nonzero_params=100, dense_bytes=400, sparse_bytes=400,
                     macs=1000, effective_macs=1000, latency_ms=2.0, throughput=500)
    b = ModelMetrics(accuracy=0.97, params=100, nonzero_params=25, dense_bytes=400, sparse_bytes=113,
                     macs=1000, effective_macs=300, latency_ms=2.5, throughput=400)
    rows = {r.metric.split(" (")[0]: r for r in comparison_table(a, b)}
    assert rows["Non-zero parameters"].ratio == pytest.approx(4.0)
    assert rows["MACs"].ratio == pytest.approx(1.0)
    assert rows["Latency"].ratio == pytest.approx(0.8)
    assert rows["Accuracy"].pruned == pytest.approx(97.0)
    text = format_table(comparison_table(a, b))
    assert "Non-zero parameters" in text and "4.00x" in text


def test_measure_current_times_the_original_beside_the_pruned_model(lenet, tiny_data, monkeypatch):
    """The latency ratio compares like with like: one interleaved timing run holds both models,
    and the original's latency is replaced by the figure from that same run."""
    import engine.session as session_module
    from engine.config import MetricsSpec
    from engine.models.sources import LoadedModel
    from engine.session import Session
    calls = []

    def fake_latencies(models, example, runs, warmup, device, cancel=None, channels_last=False):
        calls.append(list(models))
        return [(1.0 + len(calls) + i, 100.0) for i in range(len(models))]

    monkeypatch.setattr(session_module, "measure_latencies", fake_latencies)
    monkeypatch.setattr(session_module.torch.cuda, "is_available", lambda: False)
    session = Session(LoadedModel(lenet, "LeNet"), tiny_data,
                      MetricsSpec(latency_runs=2, latency_layout="nchw"))
    session.measure_original()
    assert calls == [[session.original]]
    session.prune(PruneSpec(sparsity=0.5))
    current = session.measure_current()
    assert calls[-1] == [session.original, session.model] and len(calls) == 2
    assert session.original_metrics.latency_ms == 3.0 and current.latency_ms == 4.0


def test_timing_interleaves_the_models_and_syncs_after_each_run():
    from engine.metrics import time_interleaved
    order = []

    class Tagged(torch.nn.Module):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def forward(self, x):
            order.append(self.tag)
            return x

    syncs = []
    medians = time_interleaved([Tagged("a"), Tagged("b")], torch.zeros(1), runs=3, warmup=2,
                               sync=lambda: syncs.append(len(order)))
    assert order == ["a", "a", "b", "b"] + ["a", "b"] * 3   # warm-up, then a, b, a, b...
    assert syncs == [4, 5, 6, 7, 8, 9, 10] and len(medians) == 2 and min(medians) > 0


def test_channels_last_timing_is_stated_and_applies_to_image_batches_only(lenet, tiny_data,
                                                                          monkeypatch):
    import engine.session as session_module
    from engine.config import MetricsSpec
    from engine.models.sources import LoadedModel
    from engine.session import Session
    layouts = []
    real = session_module.measure_latencies

    def spy(models, example, *args, channels_last=False, **kwargs):
        layouts.append(channels_last)
        return real(models, example, *args, channels_last=channels_last, **kwargs)

    monkeypatch.setattr(session_module, "measure_latencies", spy)
    monkeypatch.setattr(session_module.torch.cuda, "is_available", lambda: False)
    session = Session(LoadedModel(lenet, "LeNet"), tiny_data,
                      MetricsSpec(latency_runs=2, latency_warmup=1, latency_batch_size=4,
                                  channels_last=True))
    session.measure_original()
    current = session.measure_current()
    assert layouts == [True, True] and current.memory_format == "channels_last"
    latency_row = next(r for r in session.comparison() if r.metric.startswith("Latency"))
    assert latency_row.metric == "Latency (batch 4, cpu, channels_last)"
    assert latency_row.original > 0 and latency_row.pruned > 0
    from engine.metrics import is_image_batch
    assert is_image_batch(torch.zeros(2, 1, 28, 28))
    assert not is_image_batch(torch.zeros(2, 25, dtype=torch.int64))   # token batches stay as is


def test_by_default_each_model_is_timed_in_its_faster_layout_and_the_table_says_which(
        lenet, tiny_data, monkeypatch):
    """Both layouts of both models in one interleaved run; each model keeps its faster one."""
    import engine.metrics as metrics_module
    import engine.session as session_module
    from engine.config import MetricsSpec
    from engine.models.sources import LoadedModel
    from engine.session import Session
    runs = []

    def fake_time(models, example, runs_, warmup, sync=None, cancel=None):
        runs.append([type(m).__name__ for m in models])
        # original: NCHW faster (1 ms vs 2 ms); pruned: channels-last faster (0.5 ms vs 3 ms)
        return [0.001, 0.003, 0.002, 0.0005][:len(models)]

    monkeypatch.setattr(metrics_module, "time_interleaved", fake_time)
    monkeypatch.setattr(session_module.torch.cuda, "is_available", lambda: False)
    session = Session(LoadedModel(lenet, "LeNet"), tiny_data, MetricsSpec(latency_runs=2))
    session.measure_original()
    session.prune(PruneSpec(sparsity=0.5))
    current = session.measure_current()
    assert runs[-1] == ["LeNet", "LeNet", "_ChannelsLastInput", "_ChannelsLastInput"]
    assert (session.original_metrics.memory_format, current.memory_format) == ("NCHW", "channels_last")
    assert session.original_metrics.latency_ms == 1.0 and current.latency_ms == 0.5
    row = next(r for r in session.comparison() if r.metric.startswith("Latency"))
    assert row.metric == "Latency (batch 1, cpu, faster layout: original NCHW, pruned channels_last)"


class _TiedHead(torch.nn.Module):
    """A pruned layer whose weight another layer shares, and a layer pruned twice."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(6, 6)
        self.b = torch.nn.Linear(6, 6)
        self.b.weight = self.a.weight
        self.c = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.c(self.b(self.a(x)))


def test_a_plain_copy_is_make_permanent_of_a_deep_copy_without_copying_the_masked_tensors(
        monkeypatch):
    from torch.nn.utils import prune

    from engine.metrics import _plain_copy
    from engine.pruning.apply import make_permanent
    from engine.pruning.targets import refresh_masked_weights
    torch.manual_seed(0)
    model = _TiedHead().eval()
    prune.l1_unstructured(model.a, "weight", 0.5)
    prune.l1_unstructured(model.c, "weight", 0.3)
    prune.random_unstructured(model.c, "weight", 0.3)   # a PruningContainer
    refresh_masked_weights(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    expected = copy.deepcopy(model)
    make_permanent(expected)
    copied = []
    real = torch.Tensor.__deepcopy__
    monkeypatch.setattr(torch.Tensor, "__deepcopy__",
                        lambda self, memo: (copied.append(id(self)), real(self, memo))[1])
    plain = _plain_copy(model)
    monkeypatch.undo()
    masked = [model.a.weight_orig, model.a.weight_mask, model.c.weight_orig, model.c.weight_mask]
    assert not {id(t) for t in masked} & set(copied)
    assert list(plain.state_dict()) == list(expected.state_dict())
    assert all(torch.equal(v, expected.state_dict()[k]) for k, v in plain.state_dict().items())
    assert not prune.is_pruned(plain) and plain.b.weight is plain.a.weight
    assert [type(p) for p in plain.parameters()] == [type(p) for p in expected.parameters()]
    x = torch.randn(4, 6)
    with torch.no_grad():
        assert torch.equal(plain(x), expected(x))
    assert prune.is_pruned(model)   # the source keeps its masks and values
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_latency_times_an_unmasked_model_itself_and_puts_its_modes_back(lenet, monkeypatch):
    from torch.nn.utils import prune

    import engine.metrics as metrics
    from engine.metrics import measure_latencies
    copied = []
    real = metrics._plain_copy
    monkeypatch.setattr(metrics, "_plain_copy", lambda m: (copied.append(m), real(m))[1])
    masked = copy.deepcopy(lenet)
    prune.l1_unstructured(next(m for m in masked.modules() if isinstance(m, torch.nn.Linear)),
                          "weight", 0.5)
    lenet.train()
    list(lenet.modules())[1].eval()   # a mixed model: each module's flag comes back as it was
    modes = [m.training for m in lenet.modules()]
    x = torch.randn(2, 1, 28, 28)
    results = measure_latencies([lenet, masked], x, runs=2, warmup=1)
    assert len(results) == 2 and all(ms > 0 for ms, _ in results)
    assert copied == [masked]   # the masked one is timed as a plain copy, without its hooks
    assert [m.training for m in lenet.modules()] == modes
    measure_latencies([lenet], x, runs=2, warmup=1, channels_last=True)
    assert copied[-1] is lenet   # channels-last converts what it times: a copy

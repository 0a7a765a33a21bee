"""Engine data the GUI shows: the model tree description, the run history and its summary."""
import torch

from engine.config import MetricsSpec, PruneSpec
from engine.metrics import ModelMetrics, format_value, summarize_comparison
from engine.model_info import describe_model
from engine.models.sources import LoadedModel
from engine.pruning.apply import prune_model
from engine.pruning.base import PruneContext
from engine.session import Session


def test_describe_model_lists_modules_params_and_effective_sparsity(lenet):
    prune_model(lenet, PruneSpec(sparsity=0.5, include=["fc1.weight"]), PruneContext(lenet))
    info = describe_model(lenet, "LeNet")
    names = [m.name for m in info.modules]
    assert names[0] == "" and "conv1" in names and "fc3" in names
    params = {p.name: p for p in info.params}
    assert "fc1.weight_orig" not in params and "fc1.weight" in params
    fc1 = params["fc1.weight"]
    assert fc1.shape == tuple(lenet.fc1.weight.shape) and fc1.prunable
    assert fc1.nonzero == int(torch.count_nonzero(lenet.fc1.weight))
    assert abs(fc1.sparsity - 0.5) < 0.01
    assert not params["fc1.bias"].prunable and params["conv1.weight"].sparsity < 0.01
    assert sum(p.numel for p in info.params) == sum(p.numel() for p in lenet.parameters())


def test_record_run_appends_history_row_with_honest_summary(lenet, tiny_data):
    session = Session(LoadedModel(lenet, "LeNet"), tiny_data,
                      MetricsSpec(latency_runs=3, latency_warmup=1))
    session.measure_original()
    session.prune(PruneSpec(sparsity=0.8, scope="global"))
    session.measure_current()
    record = session.record_run("l1 global 80%", {"prune": {"sparsity": 0.8}})
    assert session.history == [record]
    rows = {r.metric: r for r in record.table}
    assert rows["Non-zero parameters"].pruned < rows["Non-zero parameters"].original
    assert rows["Parameters"].pruned == rows["Parameters"].original
    text = " ".join(record.summary)
    assert "Non-zero parameters fell" in text and "Tensor shapes are unchanged" in text


def test_summary_reports_structured_shrinking_and_speedups():
    a = ModelMetrics(accuracy=0.9, params=1000, nonzero_params=1000, latency_ms=2.0)
    b = ModelMetrics(accuracy=0.88, params=500, nonzero_params=400, latency_ms=1.0)
    text = " ".join(summarize_comparison(a, b))
    assert "-2.00 points" in text and "2.00x fewer parameters" in text
    assert "latency improved 2.00x" in text


def test_summary_does_not_blame_zeros_when_a_smaller_model_is_not_faster():
    a = ModelMetrics(accuracy=0.9, params=1000, nonzero_params=1000, latency_ms=2.0)
    masked = ModelMetrics(accuracy=0.9, params=1000, nonzero_params=300, latency_ms=2.0)
    smaller = ModelMetrics(accuracy=0.9, params=500, nonzero_params=500, latency_ms=1.95)
    assert "dense kernels do the same work on zeros" in " ".join(summarize_comparison(a, masked))
    text = " ".join(summarize_comparison(a, smaller))
    assert "did not improve meaningfully (1.03x) although the model is smaller" in text
    assert "zeros" not in text


def test_format_value_units():
    assert format_value(1_500_000, "bytes") == "1.50 MB"
    assert format_value(12.3456, "%") == "12.35%"
    assert format_value(None, "") == "-"
    assert format_value(61706, "") == "61,706"

"""Measuring reports its figures as they come: size first, then MACs, then accuracy."""
from engine.config import MetricsSpec, PruneSpec
from engine.metrics import comparison_table
from engine.models.sources import LoadedModel
from engine.session import Session


def test_the_table_fills_in_as_each_figure_is_measured(lenet, tiny_data):
    session = Session(LoadedModel(lenet, "lenet"), tiny_data,
                      MetricsSpec(latency_runs=2, latency_warmup=0))
    session.measure_original()
    session.prune(PruneSpec(sparsity=0.5))
    tables = []
    final = session.measure_current(on_figures=lambda o, c: tables.append(
        [r.metric for r in comparison_table(o, c)]))
    assert len(tables) == 3
    first, second, third = tables
    assert "Non-zero parameters" in first and "MACs" not in first and "Accuracy" not in first
    assert "MACs" in second and "Accuracy" not in second
    assert "Accuracy" in third and not any(m.startswith("Latency") for m in third)
    assert final.latency_ms is not None   # latency last, in the finished measurement
    assert any(r.metric.startswith("Latency") for r in session.comparison())

"""Schedules (formulas and runs) and the sensitivity scan with its ratio proposal."""
import itertools
import math

import pytest
import torch
from hypothesis import given, settings, strategies as st

from engine.config import DataSpec, FinetuneSpec, MetricsSpec, ModelSpec, PruneSpec, ScheduleSpec
from engine.pruning.base import PruneError
from engine.pruning.schedules import SCHEDULES, cubic_sparsity, gradual_plan, iterative_targets
from engine.pruning.sensitivity import SensitivityResult, predicted_drop, propose_ratios
from engine.session import Session


def test_cubic_schedule_is_zhu_and_gupta():
    assert cubic_sparsity(0, 0.9, 0.1, 0, 100) == pytest.approx(0.1)
    assert cubic_sparsity(100, 0.9, 0.1, 0, 100) == pytest.approx(0.9)
    assert cubic_sparsity(250, 0.9, 0.1, 0, 100) == pytest.approx(0.9)
    for t in (10, 37, 50, 99):
        assert cubic_sparsity(t, 0.9, 0.1, 0, 100) == pytest.approx(0.9 + (0.1 - 0.9) * (1 - t / 100) ** 3)
    assert cubic_sparsity(30, 0.8, 0.0, begin=20, length=40) == pytest.approx(0.8 - 0.8 * 0.75 ** 3)


@settings(max_examples=50, deadline=None)
@given(total=st.integers(1, 2000), final=st.floats(0.05, 0.99), every=st.integers(1, 50),
       end=st.floats(0.05, 1.0))
def test_gradual_plan_rises_to_the_target_before_training_ends(total, final, every, end):
    plan = gradual_plan(total, final, 0.0, every, end)
    steps = [s for s, _ in plan]
    values = [v for _, v in plan]
    assert steps == sorted(set(steps)) and steps[-1] <= max(total, 1)
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(final)
    assert all(b - a <= every for a, b in zip([0] + steps, steps))


def test_iterative_targets():
    assert iterative_targets(0.9, 3, "linear") == pytest.approx([0.3, 0.6, 0.9])
    geo = iterative_targets(0.875, 3)
    assert geo == pytest.approx([0.5, 0.75, 0.875])   # half of what is left each round


def test_schedules_are_registered_with_descriptions():
    assert SCHEDULES.names() == ["oneshot", "iterative", "gradual", "at_init"]
    assert all(cls.description for cls in SCHEDULES)


# --------------------------------------------------------------- sensitivity proposal

def _result(curves, sizes, baseline=0.9):
    return SensitivityResult(baseline, {k: [(0.0, baseline)] + v for k, v in curves.items()},
                             sizes)


curve_points = st.lists(st.floats(0.0, 0.9), min_size=4, max_size=4)


@settings(max_examples=60, deadline=None)
@given(accs=st.lists(curve_points, min_size=1, max_size=4),
       sizes=st.lists(st.integers(10, 5000), min_size=4, max_size=4),
       target=st.floats(0.0, 0.9))
def test_proposal_meets_the_target_within_the_scanned_range(accs, sizes, target):
    grid = [0.2, 0.4, 0.6, 0.9]
    curves = {f"l{i}.weight": list(zip(grid, a)) for i, a in enumerate(accs)}
    layer_sizes = {f"l{i}.weight": sizes[i] for i in range(len(accs))}
    total = sum(layer_sizes.values())
    capacity = sum(math.floor(0.9 * n + 1e-9) for n in layer_sizes.values())
    if math.ceil(target * total - 1e-9) > capacity:   # whole weights beyond the largest grid point
        with pytest.raises(PruneError, match="extend the grid"):
            propose_ratios(_result(curves, layer_sizes), target)
        return
    ratios = propose_ratios(_result(curves, layer_sizes), target)
    pruned = sum(round(ratios[k] * n) for k, n in layer_sizes.items())
    assert pruned == math.ceil(target * total - 1e-9)            # meets it, to the weight
    assert all(0.0 <= r <= 0.9 + 1e-12 for r in ratios.values())


def test_proposal_is_no_worse_than_any_grid_combination():
    grid = [0.25, 0.5, 0.75]
    curves = {"a.weight": list(zip(grid, [0.89, 0.85, 0.6])),
              "b.weight": list(zip(grid, [0.9, 0.9, 0.88])),
              "c.weight": list(zip(grid, [0.7, 0.5, 0.2]))}
    sizes = {"a.weight": 400, "b.weight": 1000, "c.weight": 200}
    result = _result(curves, sizes)
    target = 0.5
    ratios = propose_ratios(result, target)
    best = min(predicted_drop(result, dict(zip(sizes, combo)))
               for combo in itertools.product([0.0] + grid, repeat=3)
               if sum(s * sizes[k] for k, s in zip(sizes, combo)) >= target * sum(sizes.values()))
    assert predicted_drop(result, ratios) <= best + 1e-9
    assert ratios["b.weight"] > ratios["c.weight"]   # the insensitive layer takes the most


def test_proposal_refuses_an_unreachable_target():
    result = _result({"a.weight": [(0.5, 0.8)]}, {"a.weight": 100})
    with pytest.raises(PruneError, match="extend the grid"):
        propose_ratios(result, 0.7)


# --------------------------------------------------------------- running on the demo

@pytest.fixture(scope="module")
def demo_session():
    session = Session.open(ModelSpec(), DataSpec(), MetricsSpec(measure_latency=False))
    yield session


@pytest.fixture
def session(demo_session):
    demo_session.revert()
    return demo_session


FT = FinetuneSpec(epochs=1, optimizer="adam", lr=0.002, batch_size=64, max_batches_per_epoch=8)


def test_sensitivity_scan_on_the_demo_and_its_proposal(session):
    spec = PruneSpec(method="l1", include=["fc*", "conv2.weight"])
    before = {k: v.clone() for k, v in session.model.state_dict().items()}
    result = session.sensitivity_scan(spec, [0.5, 0.9, 0.99], max_eval_batches=1)
    assert all(torch.equal(before[k], v) for k, v in session.model.state_dict().items())
    assert list(result.curves) == ["conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight"]
    assert all([s for s, _ in c] == [0.0, 0.5, 0.9, 0.99] for c in result.curves.values())
    assert result.curves["fc1.weight"][0][1] == result.baseline > 0.9
    assert result.curves["fc3.weight"][-1][1] < result.baseline     # 99% of the classifier hurts
    ratios = propose_ratios(result, 0.8)
    outcome = session.prune(PruneSpec(method="l1", per_layer=ratios, include=list(ratios)))
    sizes = result.layer_sizes
    pruned = sum(outcome.sparsity[k] * sizes[k] for k in sizes)
    assert pruned >= 0.8 * sum(sizes.values()) - 0.5


def test_oneshot_schedule_records_sparsity(session):
    out = session.run_schedule(PruneSpec(sparsity=0.6), FT, ScheduleSpec("oneshot"))
    assert out.sparsity_trace[0] == (0, pytest.approx(0.6, abs=1e-4))
    assert out.sparsity_trace[-1] == (8, pytest.approx(0.6, abs=1e-4))


def test_iterative_rounds_rise_never_unprune_and_stop_at_the_floor(session):
    masks, seen = [], []

    def on_round(r):
        seen.append(r)
        masks.append(session.model.fc1.weight_mask.clone())

    out = session.run_schedule(PruneSpec(method="random", sparsity=0.8, seed=1), FT,
                               ScheduleSpec("iterative", {"rounds": 3}), on_round=on_round)
    assert [round(r.target, 4) for r in out.rounds] == pytest.approx(
        [round(x, 4) for x in iterative_targets(0.8, 3)])
    assert [r.sparsity for r in out.rounds] == pytest.approx(iterative_targets(0.8, 3), abs=1e-4)
    assert all(torch.all(b <= a) for a, b in zip(masks, masks[1:]))
    steps = [s for s, _ in out.sparsity_trace]
    assert steps == sorted(steps) and steps[-1] == 24
    assert not out.stopped

    session.revert()
    # fc1 alone: 90% (round 1) keeps ~97% accuracy on the demo, 99% (round 2) drops to ~31%
    out = session.run_schedule(PruneSpec(method="l1", sparsity=0.99, include=["fc1.weight"]),
                               FinetuneSpec(epochs=0),
                               ScheduleSpec("iterative", {"rounds": 2, "accuracy_floor": 0.5}))
    assert "below the floor" in out.stopped and "kept round 1" in out.stopped
    assert out.rounds[-1].accuracy < 0.5
    assert out.sparsity_trace[-1][1] == pytest.approx(out.rounds[0].sparsity)


def test_gradual_follows_the_cubic_schedule_during_training(session):
    sparsity_points = []
    out = session.run_schedule(PruneSpec(sparsity=0.8), FinetuneSpec(epochs=2, batch_size=64,
                                                                     max_batches_per_epoch=10),
                               ScheduleSpec("gradual", {"every": 4, "end_fraction": 0.5}),
                               on_sparsity=lambda s, v: sparsity_points.append((s, v)))
    assert out.sparsity_trace == sparsity_points
    events = [(r.step, r.sparsity) for r in out.rounds if r.round > 0]
    assert [s for s, _ in events] == [4, 8, 10]
    for step, sparsity in events:
        assert sparsity == pytest.approx(cubic_sparsity(step, 0.8, 0.0, 0, 10), abs=1e-3)
    assert out.sparsity_trace[-1] == (20, pytest.approx(0.8, abs=1e-4))
    assert len(out.epochs) == 2


def test_at_init_reinitialises_prunes_and_trains(session):
    trained = session.model.fc1.weight.detach().clone()
    out = session.run_schedule(PruneSpec(method="taylor", sparsity=0.7, options={"batches": 2}),
                               FT, ScheduleSpec("at_init"))
    assert not torch.allclose(session.model.fc1.weight_orig, trained)
    assert out.rounds[0].sparsity == pytest.approx(0.7, abs=1e-4)
    assert out.epochs and out.sparsity_trace[-1][1] == pytest.approx(0.7, abs=1e-4)


def test_schedule_errors_are_clear(session):
    with pytest.raises(PruneError, match="at least 1"):
        session.run_schedule(PruneSpec(), FinetuneSpec(epochs=0), ScheduleSpec("gradual"))
    with pytest.raises(PruneError, match="fixes the sparsity"):
        session.run_schedule(PruneSpec(granularity="nm"), FT, ScheduleSpec("iterative"))
    with pytest.raises(ValueError, match="no option rouns"):
        session.run_schedule(PruneSpec(), FT, ScheduleSpec("iterative", {"rouns": 2}))

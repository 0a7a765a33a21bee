"""Undo as history and stored runs, through the Session facade on the demo."""
import pytest
import torch

from engine.config import DataSpec, FinetuneSpec, MetricsSpec, ModelSpec, PruneSpec
from engine.models.lenet import LeNet
from engine.models.sources import LoadedModel
from engine.runstore import RunStore
from engine.session import Session

FAST = MetricsSpec(measure_latency=False)


def states_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def open_demo():
    return Session.open(ModelSpec(), DataSpec(), FAST)


def test_back_returns_to_each_earlier_step_then_the_original():
    session = open_demo()
    session.prune(PruneSpec(method="l1", scope="global", sparsity=0.5))
    session.record_step("l1 50%", "prune")
    after_prune = {k: v.clone() for k, v in session.model.state_dict().items()}
    session.finetune(FinetuneSpec(epochs=1, max_batches_per_epoch=3))
    session.record_step("fine-tune", "finetune")
    assert not all(torch.equal(after_prune[k], v) for k, v in session.model.state_dict().items())
    step = session.back()
    assert step.label == "l1 50%"
    now = session.model.state_dict()
    assert list(now) == list(after_prune) and all(torch.equal(after_prune[k], now[k]) for k in now)
    assert session.back() is None
    assert states_equal(session.model, session.original)
    with pytest.raises(ValueError, match="nothing to go back"):
        session.back()


def test_runs_survive_a_restart_and_restore_bit_identically(tmp_path):
    store_dir = tmp_path / "runs"
    session = open_demo()
    kept = {}
    with RunStore(store_dir) as store:
        for sparsity in (0.3, 0.6, 0.9):
            session.revert()
            session.prune(PruneSpec(method="l1", scope="global", sparsity=sparsity))
            session.measure_current()
            record = session.record_run(f"l1 {sparsity:.0%}")
            run_id = session.save_run(store, record)
            kept[run_id] = ({k: v.clone() for k, v in session.model.state_dict().items()},
                            record.metrics.accuracy)
    del session
    # a new session on the same model, as after closing and reopening the app
    session = open_demo()
    with RunStore(store_dir) as store:
        runs = store.runs(source_sha256=session.identity())
        assert [r.label for r in runs] == ["l1 30%", "l1 60%", "l1 90%"]
        for run in runs:
            session.restore_run(store, run.id)
            state, accuracy = kept[run.id]
            now = session.model.state_dict()
            assert list(now) == list(state) and all(torch.equal(state[k], now[k]) for k in now)
            assert session.measure_current().accuracy == accuracy == run.metrics["accuracy"]
        # a run of another model is refused by name
        torch.manual_seed(123)
        other = Session(LoadedModel(LeNet().eval(), "a random LeNet"), session.data, FAST)
        with pytest.raises(ValueError, match="another model"):
            other.restore_run(store, runs[0].id)


def test_a_step_is_written_from_the_models_own_tensors(monkeypatch):
    """A step is streamed to its file (safetensors' save_file copied every tensor into bytes),
    and going back to it still gives the exact model."""
    import safetensors.torch
    session = open_demo()
    session.prune(PruneSpec(method="l1", scope="global", sparsity=0.5))
    session.record_step("l1 50%", "prune")
    after_prune = {k: v.clone() for k, v in session.model.state_dict().items()}
    session.prune(PruneSpec(method="l1", scope="global", sparsity=0.8))
    monkeypatch.setattr(safetensors.torch, "save_file", None)   # it copied every tensor to bytes
    session.record_step("l1 80%", "prune")
    monkeypatch.undo()
    assert session.back().label == "l1 50%"
    now = session.model.state_dict()
    assert list(now) == list(after_prune) and all(torch.equal(after_prune[k], now[k]) for k in now)

"""After Stop the worker tells the window at once and re-takes the charts only when the model is not
exactly as they last showed it (at ResNet-50 size a snapshot and a size preview take seconds)."""
import pytest
import torch

from engine.config import FinetuneSpec, PruneSpec, StructuredSpec
from engine.models.sources import LoadedModel
from engine.progress import CancelToken
from engine.session import Session
from gui.worker import EngineWorker, Request


@pytest.fixture
def worker(qapp, lenet, tiny_data, tmp_path):
    w = EngineWorker()
    w.store_dir = str(tmp_path / "runs")
    w.events = []
    for name in ("snapshot", "size_preview", "model_changed", "layer_widths", "steps_changed",
                 "metrics"):
        getattr(w, name).connect(lambda value, name=name: w.events.append((name, value)))
    w.finished.connect(lambda op: w.events.append(("finished", op)))
    w.stopped.connect(lambda op: w.events.append(("stopped", op)))
    w.failed.connect(lambda op, msg: w.events.append(("failed", msg)))
    w.run(Request("adopt", {"session": Session(LoadedModel(lenet, "LeNet"), tiny_data)}))
    return w


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(model, before) -> bool:
    after = model.state_dict()
    return after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())


def _names(events):
    return [name for name, _ in events]


@pytest.fixture
def cancel_at_step():
    """A token cancelled after the given number of optimizer steps (a Stop pressed mid-epoch)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook
    handles = []

    def make(step: int) -> CancelToken:
        token, done = CancelToken(), [0]

        def count(*_args) -> None:
            done[0] += 1
            if done[0] >= step:
                token.cancel()
        handles.append(register_optimizer_step_post_hook(count))
        return token
    yield make
    for handle in handles:
        handle.remove()


def _finetune(epochs=1, max_batches=None):
    return FinetuneSpec(epochs=epochs, batch_size=16, device="cpu", max_batches_per_epoch=max_batches)


def test_a_stop_before_the_operation_starts_touches_nothing(worker):
    before, version = _state(worker.session.model), worker.session.model_version
    worker.events.clear()
    token = CancelToken()
    token.cancel()   # pressed while the request waited behind the previous one
    worker.run(Request("prune", {"spec": PruneSpec(method="l1", sparsity=0.5)}, token))
    assert _names(worker.events) == ["stopped"]
    assert _same(worker.session.model, before) and worker.session.model_version == version
    assert worker.session.steps.steps == []   # no undo step written


@pytest.mark.parametrize("request_args", [
    ("prune", {"spec": PruneSpec(method="taylor", sparsity=0.5)}),
    ("prune", {"spec": PruneSpec(method="l1", sparsity=0.5),
               "structured": StructuredSpec(enabled=True, ratio=0.5)}),
    ("measure", {}),
], ids=["taylor prune", "channel removal", "measure"])
def test_a_stop_that_restores_the_model_sends_no_new_charts(worker, request_args):
    op, args = request_args
    model_before = worker.session.model
    before, version = _state(model_before), worker.session.model_version
    worker.events.clear()
    token = CancelToken()
    # Stop in the middle of the operation's first forward pass on this thread
    hook = torch.nn.modules.module.register_module_forward_pre_hook(lambda m, a: token.cancel())
    try:
        worker.run(Request(op, args, token))
    finally:
        hook.remove()
    assert _names(worker.events) == ["stopped"]
    assert _same(worker.session.model, before) and worker.session.model_version == version
    assert [type(m) for m in worker.session.model.modules()] == \
        [type(m) for m in model_before.modules()]
    assert worker.session.steps.steps == []


def test_stopped_fine_tuning_sends_back_the_charts_of_the_model_as_it_was(worker, cancel_at_step):
    worker.run(Request("prune", {"spec": PruneSpec(method="l1", sparsity=0.5)}))
    settled = worker.settled_snapshot
    before, version = _state(worker.session.model), worker.session.model_version
    worker.SNAPSHOT_INTERVAL_S, worker.SNAPSHOT_SHARE = 0.0, 1e9   # a live snapshot every step
    worker.events.clear()
    worker.run(Request("finetune", {"spec": _finetune()}, cancel_at_step(3)))
    names = _names(worker.events)
    assert names[-2:] == ["stopped", "snapshot"] and names.count("snapshot") >= 2
    assert worker.events[-1][1] is settled          # the charts as they were, not re-taken
    assert "size_preview" not in names and "steps_changed" not in names
    assert _same(worker.session.model, before) and worker.session.model_version == version
    assert len(worker.session.steps.steps) == 1     # only the prune's undo step


def test_a_stop_that_keeps_finished_epochs_takes_the_charts_again(worker, cancel_at_step):
    version = worker.session.model_version
    worker.events.clear()
    # 12 training batches of 16 per epoch: Stop in the second epoch keeps the first
    worker.run(Request("finetune", {"spec": _finetune(epochs=3)}, cancel_at_step(14)))
    names = _names(worker.events)
    assert "stopped" in names
    after_stop = names[names.index("stopped"):]
    assert {"snapshot", "size_preview", "model_changed"} <= set(after_stop)
    assert worker.session.model_version == version + 1
    assert worker.charted_version == worker.session.model_version


def test_a_stop_during_the_charts_after_a_prune_keeps_the_prune_whole(worker):
    """Stop pressed once the masks are in: answered at once, and the pruned model still gets its
    charts and its undo step; only the measuring is skipped."""
    token = CancelToken()
    worker.snapshot.connect(lambda _s: token.cancel())   # while the charts are being sent
    worker.events.clear()
    worker.run(Request("prune", {"spec": PruneSpec(method="l1", sparsity=0.5)}, token))
    names = _names(worker.events)
    stopped = names.index("stopped")
    assert {"snapshot", "size_preview", "model_changed", "steps_changed"} <= set(names[stopped:])
    assert "metrics" not in names and "finished" not in names
    assert [s.op for s in worker.session.steps.steps] == ["prune"]
    assert worker.session.model_version == 1 and worker.charted_version == 1
    assert worker.session.is_pruned


def test_a_stop_while_the_run_is_written_to_the_store_leaves_it_out(worker, tmp_path):
    token = CancelToken()
    worker.metrics.connect(lambda _m: token.cancel())   # measured; the store write comes next
    worker.events.clear()
    worker.run(Request("prune", {"spec": PruneSpec(method="l1", sparsity=0.5)}, token))
    names = _names(worker.events)
    assert names[-1] == "stopped" and "metrics" in names
    assert worker._run_store().runs() == []
    assert list((tmp_path / "runs").rglob("*.safetensors*")) == []
    assert [s.op for s in worker.session.steps.steps] == ["prune"]


def test_free_memory_goes_back_after_every_ending(worker, monkeypatch, cancel_at_step):
    """Whether an operation finishes, stops or fails, the worker hands malloc's free pages back
    once it has told the window (a fine-tune leaves gigabytes of them at ResNet-50 size)."""
    import gui.worker as worker_module
    calls = []
    monkeypatch.setattr(worker_module, "release_free_memory",
                        lambda: calls.append(_names(worker.events)[-1]))
    worker.run(Request("prune", {"spec": PruneSpec(method="l1", scope="global", sparsity=0.5)}))
    worker.run(Request("finetune", {"spec": FinetuneSpec(epochs=1, batch_size=8)},
                       token=cancel_at_step(1)))
    worker.run(Request("prune", {"spec": PruneSpec(method="no-such-method")}))
    # and once before measuring (after the prune's undo step), so the scratch memory of the
    # change is gone before the original is mapped in to be measured beside it
    assert calls == ["steps_changed", "finished", "stopped", "failed"]

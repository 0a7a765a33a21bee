"""Session.model_version moves with every change to the live model and is put back with the model
by a Stop or a failure, so the window can tell "exactly as before" without comparing weights."""
import pytest
import torch

from engine.config import FinetuneSpec, PruneSpec, StructuredSpec
from engine.models.sources import LoadedModel
from engine.progress import Cancelled, CancelToken
from engine.session import Session


@pytest.fixture
def session(lenet, tiny_data):
    return Session(LoadedModel(lenet, "LeNet"), tiny_data)


def _cancelled() -> CancelToken:
    token = CancelToken()
    token.cancel()
    return token


def test_changes_count_and_a_stop_or_a_failure_puts_the_count_back(session):
    assert session.model_version == 0
    session.prune(PruneSpec(method="l1", sparsity=0.3))
    assert session.model_version == 1
    with pytest.raises(Cancelled):
        session.prune(PruneSpec(method="taylor", sparsity=0.5), cancel=_cancelled())
    with pytest.raises(Cancelled):
        session.remove_channels(StructuredSpec(enabled=True, ratio=0.5), cancel=_cancelled())
    with pytest.raises(Exception):
        session.prune(PruneSpec(method="l1", sparsity=0.5, include=["no_such_layer"]))
    assert session.model_version == 1
    result = session.finetune(FinetuneSpec(epochs=1, batch_size=16), cancel=_cancelled())
    assert result.cancelled and result.best_epoch is None
    assert session.model_version == 1          # the weights from before were loaded back
    session.finetune(FinetuneSpec(epochs=1, batch_size=16, max_batches_per_epoch=2))
    assert session.model_version == 2
    session.remove_channels(StructuredSpec(enabled=True, ratio=0.5))
    assert session.model_version == 3
    session.revert()
    assert session.model_version == 4


def test_a_schedule_stopped_in_a_pruning_step_is_undone_whole(session):
    from engine.config import ScheduleSpec
    before = {k: v.clone() for k, v in session.model.state_dict().items()}
    token = CancelToken()
    hook = torch.nn.modules.module.register_module_forward_pre_hook(lambda m, a: token.cancel())
    try:
        with pytest.raises(Cancelled):
            session.run_schedule(PruneSpec(method="taylor", sparsity=0.5),
                                 FinetuneSpec(epochs=1, batch_size=16),
                                 ScheduleSpec(kind="iterative"), cancel=token)
    finally:
        hook.remove()
    after = session.model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert session.model_version == 0

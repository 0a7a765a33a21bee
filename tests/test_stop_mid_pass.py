"""Stop takes effect inside one long forward or backward pass, not after the batch."""
import threading
import time

import pytest
import torch
from torch import nn

from engine.config import FinetuneSpec, PruneSpec, StructuredSpec
from engine.metrics import eval_batch_size, time_interleaved
from engine.models.sources import LoadedModel
from engine.progress import Cancelled, CancelToken, stop_inside_passes, without_pass_checks
from engine.session import Session

LAYER_S = 0.15
LAYERS = 12          # one pass: 12 x 0.15 s = 1.8 s
CANCEL_AFTER_S = 0.3


class SlowLayer(nn.Module):
    """A linear layer whose forward sleeps, standing in for one layer of a big model."""

    def __init__(self, width: int, delay_s: float, calls: list) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.delay_s, self.calls = delay_s, calls

    def forward(self, x):
        self.calls.append("forward")
        time.sleep(self.delay_s)
        return torch.relu(self.linear(x))


class SlowBackward(torch.autograd.Function):
    """Identity whose backward sleeps, so one backward pass takes LAYERS x LAYER_S."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        time.sleep(LAYER_S)
        return grad


class SlowNet(nn.Module):
    def __init__(self, forward_delay_s: float = LAYER_S, backward_delay: bool = False) -> None:
        super().__init__()
        self.calls: list = []
        self.body = nn.ModuleList(SlowLayer(784 if i == 0 else 16, 0.0, self.calls)
                                  for i in range(LAYERS))
        self.body[0].linear = nn.Linear(784, 16)
        for layer in self.body:
            layer.delay_s = forward_delay_s
        self.head = nn.Linear(16, 10)
        self.backward_delay = backward_delay

    def forward(self, x):
        x = x.flatten(1)
        for layer in self.body:
            x = layer(x)
            if self.backward_delay:
                x = SlowBackward.apply(x)
        return self.head(x)


def _cancel_later(token: CancelToken, delay_s: float = CANCEL_AFTER_S) -> threading.Timer:
    timer = threading.Timer(delay_s, token.cancel)
    timer.start()
    return timer


def test_cancel_mid_forward_stops_before_the_pass_ends():
    model = SlowNet().eval()
    token = CancelToken()
    _cancel_later(token)
    start = time.perf_counter()
    with pytest.raises(Cancelled), stop_inside_passes(token, model), torch.no_grad():
        model(torch.randn(1, 1, 28, 28))
    elapsed = time.perf_counter() - start
    assert elapsed < LAYERS * LAYER_S / 2, elapsed
    assert len(model.calls) < LAYERS


def test_cancel_mid_backward_surfaces_from_backward():
    model = SlowNet(forward_delay_s=0.0, backward_delay=True)
    token = CancelToken()
    loss = model(torch.randn(2, 1, 28, 28)).sum()
    _cancel_later(token)
    start = time.perf_counter()
    with pytest.raises(Cancelled), stop_inside_passes(token, model):
        loss.backward()
    assert time.perf_counter() - start < LAYERS * LAYER_S / 2
    # the gradients of the first layers were never computed
    assert model.body[0].linear.weight.grad is None


def test_hooks_are_removed_and_other_threads_are_not_interrupted():
    model = SlowNet(forward_delay_s=0.0)
    token = CancelToken()
    token.cancel()
    other: list = []
    with stop_inside_passes(token, model):
        worker = threading.Thread(target=lambda: other.append(model(torch.randn(1, 784)).shape))
        worker.start()
        worker.join()
        with pytest.raises(Cancelled):
            model(torch.randn(1, 784))
    assert other == [torch.Size([1, 10])]
    model(torch.randn(1, 784)).sum().backward()   # no hook left behind


def _slow_session(tiny_data, **kwargs) -> Session:
    torch.manual_seed(0)
    model = SlowNet(**kwargs)
    return Session(LoadedModel(model, "slow test net"), tiny_data)


def test_session_finetune_stop_mid_batch_restores_the_model_exactly(tiny_data):
    # the first optimizer imports torch._dynamo (seconds on a busy machine): not what is timed here
    torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    session = _slow_session(tiny_data, forward_delay_s=0.02, backward_delay=True)
    before = {k: v.clone() for k, v in session.model.state_dict().items()}
    token = CancelToken()
    _cancel_later(token, 0.6)
    start = time.perf_counter()
    result = session.finetune(FinetuneSpec(epochs=1, batch_size=16, device="cpu"), cancel=token)
    assert result.cancelled and not result.epochs
    assert time.perf_counter() - start < 0.6 + LAYERS * (LAYER_S + 0.02)   # within one batch
    after = session.model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_session_measure_and_prune_stop_mid_pass(tiny_data):
    session = _slow_session(tiny_data, forward_delay_s=0.0)
    for layer in session.model.body:     # slow only from here on: opening stays quick
        layer.delay_s = LAYER_S
    token = CancelToken()
    _cancel_later(token)
    start = time.perf_counter()
    with pytest.raises(Cancelled):
        session.measure(cancel=token, latency=False)
    assert time.perf_counter() - start < LAYERS * LAYER_S

    before = {k: v.clone() for k, v in session.model.state_dict().items()}
    token = CancelToken()
    _cancel_later(token)
    start = time.perf_counter()
    with pytest.raises(Cancelled):
        session.prune(PruneSpec(method="taylor", sparsity=0.5), cancel=token)
    assert time.perf_counter() - start < LAYERS * LAYER_S
    after = session.model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_eval_batches_are_sized_by_time(tiny_data):
    fast = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    assert eval_batch_size(fast, tiny_data) == 256
    slow = SlowNet(forward_delay_s=0.01).eval()   # about 0.06 s per example of the probe batch
    size = eval_batch_size(slow, tiny_data)
    assert 1 <= size <= 4
    assert eval_batch_size(slow, tiny_data) == size   # remembered, not re-timed


def test_latency_runs_of_a_big_model_stop_mid_pass_and_small_ones_are_timed_without_checks():
    slow = SlowNet().eval()
    token = CancelToken()
    with stop_inside_passes(token):
        _cancel_later(token, LAYERS * LAYER_S + 0.3)   # during the first timed run, after warm-up
        start = time.perf_counter()
        with pytest.raises(Cancelled):
            time_interleaved([slow], torch.randn(1, 784), runs=5, warmup=1, cancel=token)
        assert time.perf_counter() - start < 3 * LAYERS * LAYER_S

    fast = SlowNet(forward_delay_s=0.0).eval()
    token = CancelToken()
    with stop_inside_passes(token):
        with without_pass_checks():
            token.cancel()
            fast(torch.randn(1, 784))        # lifted: runs to the end
        with pytest.raises(Cancelled):       # and back in place afterwards
            fast(torch.randn(1, 784))


def test_a_snapshot_taken_during_an_operation_honours_its_stop():
    from engine.snapshots import take_snapshot
    model = SlowNet(forward_delay_s=0.0)
    assert len(take_snapshot(model, cancel=CancelToken()).layers) == LAYERS + 1
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        take_snapshot(model, cancel=token)


class _StopInRanking(CancelToken):
    """Cancels itself at the first Stop point inside the global ranking of scores (where a
    ResNet-50's 25M scores take seconds and no module forward runs)."""

    def raise_if_cancelled(self) -> None:
        import traceback
        if any(f.filename.endswith("threshold.py") for f in traceback.extract_stack()):
            self.cancel()
        super().raise_if_cancelled()


def test_a_global_prune_stops_inside_the_ranking_of_millions_of_scores(tiny_data):
    from engine.pruning.threshold import lowest_k_mask
    scores = torch.rand(1 << 21)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        lowest_k_mask(scores, 1000, token)
    assert int(lowest_k_mask(scores, 1000, CancelToken()).sum()) == 1000

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 1400), nn.ReLU(), nn.Linear(1400, 10))
    session = Session(LoadedModel(model, "wide net"), tiny_data)   # 1.1M weights: ranked in steps
    before = {k: v.clone() for k, v in session.model.state_dict().items()}
    token = _StopInRanking()
    with pytest.raises(Cancelled):
        session.prune(PruneSpec(method="l1", scope="global", sparsity=0.5), cancel=token)
    assert token.cancelled
    after = session.model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], v) for k, v in before.items())


class StopOnCall(nn.Module):
    """Passes its input through; presses Stop (cancels ``token``) during the ``at``-th forward
    call of it or of any copy of it (channel removal works on copies), as a user's Stop lands in
    the middle of one of channel removal's many passes."""

    class Shared:
        def __init__(self, token: CancelToken | None, at: int) -> None:
            self.token, self.at, self.calls = token, at, 0

        def __deepcopy__(self, memo):
            return self   # copies of the model count and stop through the same object

    def __init__(self, token: CancelToken | None = None, at: int = 0) -> None:
        super().__init__()
        self.shared = StopOnCall.Shared(token, at)

    def forward(self, x):
        shared = self.shared
        shared.calls += 1
        if shared.token is not None and shared.calls == shared.at:
            shared.token.cancel()
        return x


def _channel_session(tiny_data, stopper: StopOnCall) -> Session:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), stopper,
                          nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).eval()
    return Session(LoadedModel(model, "channel test net"), tiny_data)


@pytest.mark.parametrize("operation", ["remove_channels", "preflight"])
def test_stop_inside_channel_removals_passes_is_a_stop_not_a_failure(tiny_data, operation):
    # A Stop raised inside torch-pruning's trace or a group's check once came back as "could not
    # trace the channel dependencies" (or kept that group whole and retried): every pass is tried
    counter = StopOnCall()
    getattr(_channel_session(tiny_data, counter), operation)(StructuredSpec(ratio=0.5))
    assert counter.shared.calls >= 3
    for at in range(1, counter.shared.calls + 1):
        token = CancelToken()
        session = _channel_session(tiny_data, StopOnCall(token, at))
        before = {k: v.clone() for k, v in session.model.state_dict().items()}
        with pytest.raises(Cancelled):
            getattr(session, operation)(StructuredSpec(ratio=0.5), cancel=token)
        after = session.model.state_dict()
        assert after.keys() == before.keys(), at
        assert all(torch.equal(after[k], v) for k, v in before.items()), at

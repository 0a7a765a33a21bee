"""Two channel removals in a row: the session reports the channels removed by the original
model's numbers (what the Masks view's channel strip draws), checked against the weights."""
import torch

from engine.config import DataSpec, MetricsSpec, ModelSpec, StructuredSpec
from engine.session import Session


def _kept(width, removed):
    return [c for c in range(width) if c not in removed]


def test_second_removal_reports_original_indices_and_a_step_back_forgets_them():
    session = Session.open(ModelSpec(), DataSpec(), MetricsSpec(measure_latency=False))
    original = session.original
    session.remove_channels(StructuredSpec(ratio=0.5))
    session.record_step("first removal", "prune")
    first = dict(session.structured.removed_channels)
    assert len(first["conv2"]) == 8
    session.remove_channels(StructuredSpec(ratio=0.5))
    session.record_step("second removal", "prune")
    removed = session.structured.removed_channels
    assert set(first["conv2"]) < set(removed["conv2"]) and len(removed["conv2"]) == 12
    assert all(0 <= c < 16 for c in removed["conv2"])
    # the surviving weights are the original ones at the channels said to be kept
    out_kept = _kept(16, removed["conv2"])
    in_kept = _kept(6, removed["conv1"])
    assert torch.equal(session.model.conv2.weight,
                       original.conv2.weight[out_kept][:, in_kept])
    assert torch.equal(session.model.conv1.weight, original.conv1.weight[in_kept])
    # back to the first removal's model: the second's record no longer describes it
    session.back()
    assert session.structured is None

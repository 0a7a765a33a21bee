"""engine.snapshots: the histograms the weight charts draw."""
import numpy as np
import pytest
import torch
from torch import nn

from engine.config import PruneSpec
from engine.pruning.apply import prune_model
from engine.pruning.base import PruneContext
from engine.snapshots import take_snapshot


@pytest.mark.parametrize("ranges", [None, "zero on an edge", "zero outside"])
def test_histograms_of_all_and_of_non_zero_weights(ranges):
    """Each layer's histogram of all weights, and of the non-zero ones (the zeros left out of the
    bin they fall in): as numpy bins the sampled values, whether the range comes from the weights
    or is fixed so that zero sits exactly on a bin edge or outside every bin."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 10))
    prune_model(model, PruneSpec(method="l1", sparsity=0.6), PruneContext(model, seed=0))
    with torch.no_grad():
        model[0].weight_orig[:3] = -0.0   # negative zeros are zeros too
    fixed = {"zero on an edge": (-0.25, 0.25), "zero outside": (0.01, 0.3)}.get(ranges)
    snapshot = take_snapshot(model, bins=8, max_samples=10_000,
                             ranges={"0.weight": fixed, "2.weight": fixed} if fixed else None)
    generator = torch.Generator().manual_seed(0)   # the sample the snapshot took, taken again
    for name, index in (("0.weight", 0), ("2.weight", 2)):
        w = (model[index].weight_orig * model[index].weight_mask).detach().reshape(-1)
        if w.numel() > 10_000:
            w = w[torch.randint(w.numel(), (10_000,), generator=generator)]
        values = w.numpy()
        hist = snapshot.histograms[name]
        lo, hi = fixed or (float(values.min()), float(values.max()))
        counts, edges = np.histogram(values, bins=8, range=(lo, hi))
        assert np.array_equal(hist.edges, edges) and np.array_equal(hist.counts, counts)
        assert np.array_equal(hist.counts_nonzero, np.histogram(values[values != 0], bins=edges)[0])
        assert (hist.counts - hist.counts_nonzero).sum() == (0 if ranges == "zero outside"
                                                         else (values == 0).sum())

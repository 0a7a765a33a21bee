"""A model with 0-dim tensors (BatchNorm's num_batches_tracked) has a run-store identity."""
import torch
from torch import nn

from engine.runstore import model_identity


def test_identity_of_a_model_with_batchnorm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    first = model_identity(model)
    assert first == model_identity(model)
    model[1].num_batches_tracked += 1
    assert model_identity(model) != first

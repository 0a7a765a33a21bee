"""Each figure PruneLab reports, checked against a reference computed here independently (a hand
count, a real file's size, torch.nn.utils.prune, torch.autograd.functional.hessian, exact integer
arithmetic), never against PruneLab's own helpers."""
import copy
import os

import torch
from torch import nn
from torch.nn.utils import prune

from engine.config import PruneSpec
from engine.export import export_model
from engine.metrics import count_macs, storage_bytes
from engine.pruning.apply import prune_model
from engine.pruning.base import PruneContext


class SharedLinear(nn.Module):
    """One Linear applied twice per forward pass, as ALBERT-style shared blocks do."""
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(32, 32)

    def forward(self, x):
        return self.fc(torch.relu(self.fc(x)))


def test_effective_macs_scale_every_call_of_a_shared_layer():
    model = SharedLinear()
    mask = torch.zeros(32, 32)
    mask[:, :8] = 1                      # 24 of 32 input columns zeroed
    with torch.no_grad():
        prune.custom_from_mask(model.fc, "weight", mask)
    dense, effective = count_macs(model, torch.randn(1, 32))
    # by hand: 2 calls x 32 outputs x 32 inputs, of which 8 inputs are non-zero
    assert dense == 2 * 32 * 32
    assert effective == 2 * 32 * 8


class TiedEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(100, 16)
        self.decoder = nn.Linear(16, 100, bias=False)
        self.decoder.weight = self.embedding.weight

    def forward(self, tokens):
        return self.decoder(self.embedding(tokens)).mean(1)


def _saved_size(tmp_path, state) -> int:
    # torch.save records the file's stem inside the zip; "archive" is what an in-memory save records
    path = tmp_path / "archive.pt"
    torch.save(state, path)
    return os.path.getsize(path)


def test_dense_size_is_the_size_of_the_saved_file(tmp_path, lenet):
    dense, _ = storage_bytes(lenet)
    assert dense == _saved_size(tmp_path, dict(lenet.state_dict()))
    prune_model(lenet, PruneSpec(sparsity=0.7), PruneContext(lenet))
    folded = copy.deepcopy(lenet)
    for module in folded.modules():
        if prune.is_pruned(module) and hasattr(module, "weight_orig"):
            prune.remove(module, "weight")
    dense, _ = storage_bytes(lenet)
    assert dense == _saved_size(tmp_path, dict(folded.state_dict()))
    export_model(lenet, tmp_path / "pruned_lenet.pt")      # the file the row describes
    assert dense == os.path.getsize(tmp_path / "pruned_lenet.pt")


def test_tied_weights_are_counted_once(tmp_path):
    model = TiedEmbedding()
    dense, sparse = storage_bytes(model)
    assert dense == _saved_size(tmp_path, dict(model.state_dict()))
    assert sparse == 100 * 16 * 4     # one 100x16 float32 tensor (no zeros), not two

"""The custom pruning method of the torch.nn.utils.prune tutorial (reference seed 000).

Load it in PruneLab (File → Load pruning method file…, after confirming you trust it) or name it in a
recipe: ``"prune": {"plugin": "../examples/every_other.py", "method": "ExamplePruningMethod"}``.
"""
import torch
from torch.nn.utils import prune


class ExamplePruningMethod(prune.BasePruningMethod):
    """Prune every other entry in a tensor (the torch tutorial's example method)."""
    PRUNING_TYPE = "unstructured"

    def compute_mask(self, t, default_mask):
        mask = default_mask.clone()
        mask.view(-1)[::2] = 0
        return mask


def importance_abs_cubed(weight: torch.Tensor) -> torch.Tensor:
    """|w|³: ranks like L1 for single weights but weighs large entries more inside a group."""
    return weight.abs() ** 3

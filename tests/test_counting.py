"""engine.counting: the count of non-zero entries every view of a pruned model takes."""
import pytest
import torch

from engine.counting import count_nonzero


def _cases():
    torch.manual_seed(0)
    t = torch.randn(40, 30) * (torch.rand(40, 30) > 0.5)
    t[0, 0], t[0, 1], t[0, 2] = float("nan"), -0.0, float("inf")
    big = torch.randn(4 << 20) * (torch.rand(4 << 20) > 0.3)
    return {"float32": t, "transposed": t.T, "strided": t[:, ::3], "float64": t.double(),
            "float16": t.half(), "bfloat16": t.bfloat16(), "bool": t != 0,
            "int64": (t * 10).nan_to_num(0, 0, 0).long(), "requires grad": t.clone().requires_grad_(),
            "empty": torch.zeros(0),
            "all zeros": torch.zeros(3, 3), "scalar": torch.tensor(2.0),
            # counted in pieces: a whole number of them, a part one, and a big strided view
            "big": big, "big and a part": big[: (3 << 20) + 5], "big transposed": big.view(-1, 1024).T}


@pytest.mark.parametrize("name", list(_cases()))
def test_counts_as_torch_does(name):
    tensor = _cases()[name]
    assert count_nonzero(tensor) == int(torch.count_nonzero(tensor.detach()))
    assert isinstance(count_nonzero(tensor), int)

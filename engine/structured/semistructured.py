"""2:4 semi-structured sparsity: in every group of 4 consecutive weights of a row at most 2 are
non-zero. NVIDIA GPUs of compute capability 8.0 and newer (Ampere, Hopper, ...) have sparse tensor
cores that skip the zeros, so a 2:4 Linear layer really runs faster — unlike unstructured sparsity,
which dense kernels execute at full cost.

:func:`semi_structured_availability` says whether this machine can do it and, when not, why (the
GUI shows that reason next to the disabled option). :func:`convert_semi_structured` turns the 2:4
Linear weights of a copy of the model into ``torch.sparse`` semi-structured tensors, checks the
outputs match the dense model's, and times both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from engine.metrics import _plain_copy, forward_batch, time_interleaved, to_device
from engine.progress import CancelToken, Progress, ProgressFn

MIN_CAPABILITY = (8, 0)


class SemiStructuredUnavailable(RuntimeError):
    """2:4 sparse kernels cannot run here; the message says why."""


@dataclass(frozen=True)
class SemiStructuredAvailability:
    available: bool
    reason: str        # why not, or which GPU will run it


def semi_structured_availability() -> SemiStructuredAvailability:
    if not hasattr(torch.sparse, "to_sparse_semi_structured"):
        return SemiStructuredAvailability(False, f"this PyTorch ({torch.__version__}) has no "
                                                 f"torch.sparse.to_sparse_semi_structured")
    if not torch.cuda.is_available():
        return SemiStructuredAvailability(
            False, "2:4 sparse kernels run only on NVIDIA GPUs of compute capability 8.0 or newer "
                   "(Ampere, Hopper, ...); no CUDA device is available here")
    major, minor = torch.cuda.get_device_capability()
    name = torch.cuda.get_device_name()
    if (major, minor) < MIN_CAPABILITY:
        return SemiStructuredAvailability(
            False, f"{name} has compute capability {major}.{minor}; 2:4 sparse tensor cores need "
                   f"{MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} or newer")
    from torch.sparse import SparseSemiStructuredTensor
    if not SparseSemiStructuredTensor._FORCE_CUTLASS and not torch.backends.cusparselt.is_available():
        return SemiStructuredAvailability(False, f"this PyTorch build ({torch.__version__}) has no "
                                                 f"cuSPARSELt, which its 2:4 kernels use")
    return SemiStructuredAvailability(True, f"{name} (compute capability {major}.{minor}) has 2:4 "
                                            f"sparse tensor cores")


def is_two_four(weight: torch.Tensor) -> bool:
    """True when every group of 4 consecutive weights along each row has at most 2 non-zeros."""
    if weight.dim() != 2 or weight.shape[1] % 4:
        return False
    return bool(((weight.reshape(weight.shape[0], -1, 4) != 0).sum(-1) <= 2).all())


def two_four_mask(weight: torch.Tensor) -> torch.Tensor:
    """Keeps the 2 largest-magnitude weights of every group of 4 along each row."""
    if weight.dim() != 2 or weight.shape[1] % 4:
        raise ValueError(f"a 2:4 mask needs a 2-D weight whose columns are a multiple of 4, not "
                         f"{tuple(weight.shape)}")
    groups = weight.detach().abs().reshape(weight.shape[0], -1, 4)
    keep = groups.topk(2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return mask.reshape(weight.shape)


@dataclass(frozen=True)
class LayerConversion:
    name: str
    shape: tuple[int, int]
    converted: bool
    reason: str = ""


@dataclass
class SemiStructuredReport:
    """Plain data: which layers were converted and what it bought."""
    device: str
    dtype: str
    batch_size: int
    layers: list[LayerConversion] = field(default_factory=list)
    max_abs_diff: float = 0.0
    outputs_match: bool = False
    tolerance: float = 0.0
    dense_ms: Optional[float] = None
    sparse_ms: Optional[float] = None

    @property
    def converted(self) -> int:
        return sum(layer.converted for layer in self.layers)

    @property
    def speedup(self) -> Optional[float]:
        return self.dense_ms / self.sparse_ms if self.dense_ms and self.sparse_ms else None


def _sparse_class():
    """The subclass to_sparse_semi_structured will use, for its shape constraints."""
    from torch.sparse import SparseSemiStructuredTensor
    if SparseSemiStructuredTensor._FORCE_CUTLASS:
        return torch.sparse.SparseSemiStructuredTensorCUTLASS
    return torch.sparse.SparseSemiStructuredTensorCUSPARSELT


def _shape_problem(weight: torch.Tensor, dtype: torch.dtype) -> str:
    constraints = _sparse_class()._DTYPE_SHAPE_CONSTRAINTS.get(dtype)
    if constraints is None:
        return f"{dtype} is not supported by the 2:4 kernels"
    rows, cols = weight.shape
    r, c = constraints.sparse_min_rows, constraints.sparse_min_cols
    if rows < r or rows % r or cols < c or cols % c:
        return f"shape {rows}x{cols} is not a multiple of {r}x{c}"
    return ""


@torch.no_grad()
@torch.no_grad()
def convert_semi_structured(model: nn.Module, example_input, apply_mask: bool = False,
                            dtype: torch.dtype = torch.float16, runs: int = 50, warmup: int = 10,
                            progress: Optional[ProgressFn] = None,
                            cancel: Optional[CancelToken] = None) -> tuple[nn.Module, SemiStructuredReport]:
    """Returns (a CUDA copy of ``model`` with 2:4 Linear weights as semi-structured sparse tensors,
    the report). ``model`` itself is unchanged.

    Linear layers whose weights are already 2:4 (e.g. pruned with a 2:4 pattern) are converted;
    with ``apply_mask`` every eligible Linear first gets a 2:4 magnitude mask. The outputs of the
    dense copy (same weights, same dtype) and of the sparse copy are compared, then both are timed
    on the same input.
    """
    availability = semi_structured_availability()
    if not availability.available:
        raise SemiStructuredUnavailable(availability.reason)
    from torch.sparse import to_sparse_semi_structured
    device = torch.device("cuda")
    dense = _plain_copy(model).to(device=device, dtype=dtype).eval()
    example = to_device(example_input, device)
    example = (tuple(x.to(dtype) if x.is_floating_point() else x for x in example)
               if isinstance(example, (tuple, list)) else example.to(dtype))
    batch = (example[0] if isinstance(example, (tuple, list)) else example).shape[0]
    report = SemiStructuredReport(device=torch.cuda.get_device_name(), dtype=str(dtype).replace("torch.", ""),
                                  batch_size=batch)
    layers = [(n, m) for n, m in dense.named_modules() if type(m) is nn.Linear]
    for name, layer in layers:
        problem = _shape_problem(layer.weight, dtype)
        if not problem and apply_mask:
            layer.weight.mul_(two_four_mask(layer.weight))
        if not problem and not is_two_four(layer.weight):
            problem = "weights are not 2:4 sparse (prune with a 2:4 pattern or apply the 2:4 mask)"
        report.layers.append(LayerConversion(name, tuple(layer.weight.shape), not problem, problem))
    if not report.converted:
        raise SemiStructuredUnavailable("no Linear layer can be converted: " + "; ".join(
            f"{c.name}: {c.reason}" for c in report.layers) if report.layers else
            "the model has no Linear layer")
    if progress is not None:
        progress(Progress("2:4 sparsity", 0, 0, "converting weights"))
    sparse = _plain_copy(dense)  # same (masked) weights, converted below
    sparse_modules = dict(sparse.named_modules())
    for conv in report.layers:
        if conv.converted:
            layer = sparse_modules[conv.name]
            layer.weight = nn.Parameter(to_sparse_semi_structured(layer.weight.detach()),
                                        requires_grad=False)
    reference = forward_batch(dense, example).float()
    output = forward_batch(sparse, example).float()
    report.max_abs_diff = float((output - reference).abs().max())
    # half precision: sparse and dense kernels accumulate in different orders
    report.tolerance = 1e-2 * max(1.0, float(reference.abs().max()))
    report.outputs_match = report.max_abs_diff <= report.tolerance
    if progress is not None:
        progress(Progress("2:4 sparsity", 0, 0, "timing dense and sparse"))
    # interleaved, as every latency PruneLab reports: both see the same GPU state
    dense_s, sparse_s = time_interleaved([dense, sparse], example, runs, warmup,
                                         torch.cuda.synchronize, cancel)
    report.dense_ms, report.sparse_ms = dense_s * 1000.0, sparse_s * 1000.0
    return sparse, report

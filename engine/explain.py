""""Why is it not faster?": the measured answer for a pruned model against its original.

A latency sweep over batch sizes and both memory layouts (NCHW and channels-last, for image
models) on the current device and thread count, every variant of one batch size timed in one
interleaved run; how the pruned weights are stored (zeros kept in dense tensors, compressed, or
removed); whether sparse kernels exist on this machine; and a plain verdict with the numbers.
"""
from __future__ import annotations

import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from engine.metrics import (LAYOUTS, _plain_copy, count_macs, count_parameters, forward_batch,
                            is_image_batch, measure_latencies, measure_layouts, to_device)
from engine.progress import CancelToken, ProgressFn, ProgressTracker

SWEEP_BATCHES = (1, 4, 16, 64)
# A batch size whose single forward pass takes longer than this is not swept (nor larger ones):
# a sweep that takes minutes on a shared CPU answers nothing the smaller batches do not.
MAX_FORWARD_S = 1.0


@dataclass(frozen=True)
class SweepPoint:
    batch: int
    layout: str                  # "NCHW", "channels_last", or "" for non-image inputs
    original_ms: float
    current_ms: float

    @property
    def speedup(self) -> float:
        return self.original_ms / self.current_ms if self.current_ms else 0.0


@dataclass
class Explanation:
    points: list[SweepPoint]
    device: str
    threads: int
    machine: str
    storage: str                 # "removed", "dense zeros", "compressed" or "dense"
    storage_note: str
    sparse_kernels: str          # whether sparse kernels can run here, and why (not)
    params: tuple[int, int]      # (original, current)
    nonzero: tuple[int, int]
    macs: tuple[int, int]        # dense MACs
    effective_macs: tuple[int, int]
    skipped: list[str] = field(default_factory=list)
    verdict: list[str] = field(default_factory=list)

    @property
    def macs_reduction(self) -> float:
        return self.macs[0] / self.macs[1] if self.macs[1] else 0.0

    def best(self, batch: int, which: str = "current") -> Optional[SweepPoint]:
        """The point at ``batch`` in which ``which`` model ran fastest."""
        points = [p for p in self.points if p.batch == batch]
        if not points:
            return None
        key = (lambda p: p.current_ms) if which == "current" else (lambda p: p.original_ms)
        return min(points, key=key)

    def lines(self) -> list[str]:
        out = [f"Why is it (not) faster? {self.device} ({self.machine}), {self.threads} thread(s)",
               f"  {'batch':>5}  {'layout':<13} {'original ms':>11} {'pruned ms':>10} {'speedup':>8}"]
        for p in self.points:
            out.append(f"  {p.batch:>5}  {p.layout or '-':<13} {p.original_ms:>11.3f} "
                       f"{p.current_ms:>10.3f} {p.speedup:>7.2f}x")
        out += [f"  skipped: {s}" for s in self.skipped]
        out.append(f"  storage: {self.storage} ({self.storage_note})")
        out.append(f"  sparse kernels: {self.sparse_kernels}")
        out += [f"  {v}" for v in self.verdict]
        return out

    def as_dict(self) -> dict:
        d = asdict(self)
        d["macs_reduction"] = self.macs_reduction
        return d


def storage_format(original: nn.Module, current: nn.Module) -> tuple[str, str]:
    """How the current model holds what pruning took away."""
    compressed = [n for n, p in current.named_parameters()
                  if p.layout != torch.strided or "SparseSemiStructured" in type(p.data).__name__]
    params0, _ = count_parameters(original)
    params1, nonzero1 = count_parameters(current)
    if compressed:
        return "compressed", f"{len(compressed)} tensor(s) in a sparse format"
    if params1 < params0:
        return "removed", (f"channels were removed: tensors are smaller ({params0:,} -> "
                           f"{params1:,} parameters), dense kernels do less work")
    if nonzero1 < params1:
        return "dense zeros", (f"{params1 - nonzero1:,} zeros stored in dense tensors of unchanged "
                               f"shape: dense kernels multiply them like any other weight")
    return "dense", "no weight was removed or zeroed"


def sparse_kernel_support() -> str:
    """What this machine offers for sparse weights (2:4 needs CUDA capability >= 8.0)."""
    from engine.structured.semistructured import semi_structured_availability
    availability = semi_structured_availability()
    here = (f"this machine has {torch.cuda.get_device_name()} (capability "
            f"{'.'.join(map(str, torch.cuda.get_device_capability()))})"
            if torch.cuda.is_available() else f"this machine has no CUDA device (CPU: {_cpu_name()})")
    verdict = "2:4 semi-structured kernels available" if availability.available \
        else "no 2:4 sparse kernels"
    return (f"{verdict} ({here}): {availability.reason}. Unstructured zeros have no fast kernel "
            f"in PyTorch on either device.")


def _cpu_name() -> str:
    return platform.processor() or platform.machine() or "unknown"


@torch.no_grad()
def explain(original: nn.Module, current: nn.Module, example_for: Callable[[int], object],
            batches: tuple[int, ...] = SWEEP_BATCHES, runs: int = 20, warmup: int = 3,
            device: Optional[torch.device] = None, progress: Optional[ProgressFn] = None,
            cancel: Optional[CancelToken] = None, max_forward_s: float = MAX_FORWARD_S
            ) -> Explanation:
    """Measures ``current`` against ``original`` and says why it is or is not faster.
    ``example_for(batch)`` gives an input batch of that size; neither model is changed."""
    device = device or torch.device("cpu")
    layouts = LAYOUTS if is_image_batch(example_for(1)) else ("",)
    tracker = ProgressTracker("Explaining latency", len(batches), progress)
    plain = [_plain_copy(m).to(device).eval() for m in (original, current)]
    points, skipped = [], []
    for i, batch in enumerate(batches, 1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        example = example_for(batch)
        try:
            started = time.perf_counter()
            forward_batch(plain[0], to_device(example, device))
            one = time.perf_counter() - started
        except RuntimeError as exc:   # out of memory at this batch size
            skipped.append(f"batch {batch} and larger: {str(exc).splitlines()[0][:120]}")
            break
        if one > max_forward_s:
            skipped.append(f"batch {batch} and larger: one forward pass of the original takes "
                           f"{one:.1f} s here")
            break
        if len(layouts) == 2:
            before, after = measure_layouts(plain, example, runs, warmup, device, cancel)
            points += [SweepPoint(batch, layout, before[layout][0], after[layout][0])
                       for layout in layouts]
        else:
            (before, _), (after, _) = measure_latencies(plain, example, runs, warmup, device, cancel)
            points.append(SweepPoint(batch, "", before, after))
        tracker.update(i, f"batch {batch}")
    example1 = example_for(1)
    params0, nonzero0 = count_parameters(original)
    params1, nonzero1 = count_parameters(current)
    macs0, eff0 = count_macs(original, example1)
    macs1, eff1 = count_macs(current, example1)
    storage, note = storage_format(original, current)
    result = Explanation(points, device.type, torch.get_num_threads(),
                         torch.cuda.get_device_name() if device.type == "cuda" else _cpu_name(),
                         storage, note, sparse_kernel_support(), (params0, params1),
                         (nonzero0, nonzero1), (macs0, macs1), (eff0, eff1), skipped)
    result.verdict = verdict(result)
    return result


def _at(point: SweepPoint) -> str:
    """"at batch 16 in channels-last" """
    layout = {"NCHW": " in NCHW", "channels_last": " in channels-last"}.get(point.layout, "")
    return f"at batch {point.batch}{layout}"


def verdict(e: Explanation) -> list[str]:
    """The plain reading of the measurements, each claim with its number."""
    lines = []
    reference = 16 if any(p.batch == 16 for p in e.points) else max((p.batch for p in e.points),
                                                                     default=None)
    best = e.best(reference) if reference is not None else None
    if e.storage == "removed":
        head = f"Channels were removed: {e.macs_reduction:.1f}x fewer MACs"
        if best is not None:
            head += f", {best.speedup:.1f}x faster {_at(best)}"
        lines.append(head + ".")
        if best is not None and best.speedup < 0.8 * e.macs_reduction:
            lines.append(f"The speedup is below the MACs reduction ({best.speedup:.2f}x vs "
                         f"{e.macs_reduction:.2f}x): thinner layers use the vector units less "
                         f"well, and memory traffic and non-conv ops do not shrink as much.")
        one = e.best(1)
        if one is not None and best is not None and best.batch != 1 \
                and one.speedup < 0.8 * best.speedup:
            lines.append(f"At batch 1 the call overhead dominates: {one.speedup:.2f}x "
                         f"({one.current_ms:.2f} ms vs {one.original_ms:.2f} ms).")
    elif e.storage == "dense zeros":
        sparsity = 1 - e.nonzero[1] / e.params[1] if e.params[1] else 0.0
        measured = f" ({best.speedup:.2f}x {_at(best)})" if best else ""
        lines.append(f"Only weights were zeroed ({sparsity:.0%} of them): every tensor keeps its "
                     f"shape, so dense kernels do the same {e.macs[1]:,} MACs{measured}.")
        lines.append(f"The {e.effective_macs[0] / max(1, e.effective_macs[1]):.1f}x fewer "
                     f"effective MACs would need sparse kernels; "
                     + ("none exist here for unstructured zeros. " if "no 2:4" in e.sparse_kernels
                        else "only 2:4 patterns run faster, on this GPU. ")
                     + "Remove channels (structured pruning) for a model that is faster anywhere.")
    elif e.storage == "compressed":
        lines.append(f"Weights are stored compressed: speed depends on the sparse kernels"
                     + (f" ({best.speedup:.2f}x {_at(best)})" if best else "") + ".")
    else:
        lines.append("The model has not been pruned: nothing to speed up.")
    layouts = _layout_advice(e, reference)
    if layouts:
        lines.append(layouts)
    return lines


def _layout_advice(e: Explanation, batch: Optional[int]) -> str:
    points = {p.layout: p for p in e.points if p.batch == batch}
    if set(points) != set(LAYOUTS):
        return ""
    nchw, last = points["NCHW"].current_ms, points["channels_last"].current_ms
    faster, ratio = ("channels-last", nchw / last) if last < nchw else ("NCHW", last / nchw)
    if ratio < 1.1:
        return f"Both layouts run the pruned model alike at batch {batch} (within {ratio:.2f}x)."
    return f"At batch {batch} the pruned model runs {ratio:.2f}x faster in {faster}: deploy it that way."

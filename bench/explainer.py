"""Does the latency PruneLab reports for a channel-pruned model show its MACs reduction, in the
layout the app picks by itself? And does the instant preview predict the MACs it then measures?

resnet18 (1000 classes, random init: latency does not depend on the values) with 50% of channels
removed (L1 importance, uniform ratio, the app's defaults). Latency at batch 16 is timed exactly as
the comparison table times it by default (engine.metrics.measure_layouts + fastest_layout: both
models in NCHW and channels-last, all four variants interleaved, warm-up then the median of timed
runs; each model keeps its faster layout). Printed beside it, from the same run: both models forced
to NCHW (the old default) and both forced to channels-last (bench/structured.py's setting).

The preview (engine.preview.SizePreview, predicted from shapes without pruning) is compared with
torchprofile's count on the pruned model.

Targets:
    RESULT latency_over_macs=<speedup / MACs reduction, app's layouts> target=>=0.9 PASS|FAIL
    RESULT preview_error=<|predicted - measured| / measured MACs> target=<=0.01 PASS|FAIL
The machine's load average is printed at the start and the end: timings on a shared machine are
only as good as its quiet.
Usage: python bench/explainer.py [--quick] [--device cuda] [--size 112] [--runs N] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine.config import StructuredSpec  # noqa: E402
from engine.metrics import LAYOUTS, count_macs, fastest_layout, measure_layouts  # noqa: E402
from engine.models.architectures import build_architecture  # noqa: E402
from engine.preview import SizePreview  # noqa: E402
from engine.structured.remove import prune_channels  # noqa: E402

LATENCY_TARGET = 0.9
PREVIEW_TARGET = 0.01
BATCH = 16


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)"
    except OSError:
        return "unknown"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed runs")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--size", type=int, default=112, help="input height and width (default 112)")
    parser.add_argument("--runs", type=int, help="timed runs per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device is available", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    runs = args.runs or (15 if args.quick else 40)
    started = time.perf_counter()
    where = torch.cuda.get_device_name() if device.type == "cuda" else (platform.processor() or platform.machine())
    print(f"bench/explainer.py  {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  torch {torch.__version__}  "
          f"{device.type} ({where}), {torch.get_num_threads()} thread(s); load average {load()}")

    torch.manual_seed(0)
    dense = build_architecture("resnet18", 1000).eval()
    example = torch.randn(1, 3, args.size, args.size)
    spec = StructuredSpec(enabled=True, ratio=0.5)
    preview_started = time.perf_counter()
    preview = SizePreview.build(dense, example)
    built = time.perf_counter() - preview_started
    predicted = preview.channels(spec)
    pruned = prune_channels(dense, example, spec).model.eval()
    macs_dense, macs_pruned = count_macs(dense, example)[0], count_macs(pruned, example)[0]
    reduction = macs_dense / macs_pruned
    preview_error = abs(predicted.macs - macs_pruned) / macs_pruned
    print(f"resnet18, input 3x{args.size}x{args.size}, 50% of channels removed (l1, uniform): MACs "
          f"{macs_dense / 1e6:.1f}M -> {macs_pruned / 1e6:.1f}M ({reduction:.2f}x fewer)")
    print(f"preview: predicted {predicted.macs / 1e6:.3f}M MACs, {predicted.params:,} parameters "
          f"(built in {built:.2f} s, answered in {predicted.seconds * 1000:.2f} ms); measured "
          f"{macs_pruned / 1e6:.3f}M MACs, {sum(p.numel() for p in pruned.parameters()):,} parameters")

    batch = torch.randn(BATCH, 3, args.size, args.size)
    timed = measure_layouts([dense.to(device), pruned.to(device)], batch, runs, 5, device)
    picked = [fastest_layout(t) for t in timed]
    rows = [("app's choice (faster per model)", picked[0][0], picked[1][0],
             f"{picked[0][2]} / {picked[1][2]}")]
    rows += [(f"both {layout}", timed[0][layout][0], timed[1][layout][0], layout) for layout in LAYOUTS]
    print(f"\nbatch {BATCH}, {runs} interleaved timed runs per variant (4 variants), median:")
    header = f"{'layouts':<32} {'original ms':>11} {'pruned ms':>10} {'speedup':>8} {'speedup/MACs':>13}  layout"
    print(header)
    print("-" * len(header))
    for label, before, after, layout in rows:
        print(f"{label:<32} {before:>11.2f} {after:>10.2f} {before / after:>7.2f}x "
              f"{before / after / reduction:>13.2f}  {layout}")
    ratio = picked[0][0] / picked[1][0] / reduction
    print(f"\nload average at the end {load()}; total time {time.perf_counter() - started:.0f} s")
    print(f"RESULT latency_over_macs={ratio:.2f} target=>={LATENCY_TARGET} "
          f"{'PASS' if ratio >= LATENCY_TARGET else 'FAIL'}")
    print(f"RESULT preview_error={preview_error:.4f} target=<={PREVIEW_TARGET} "
          f"{'PASS' if preview_error <= PREVIEW_TARGET else 'FAIL'}")
    return 0 if ratio >= LATENCY_TARGET and preview_error <= PREVIEW_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

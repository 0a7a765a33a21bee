"""Does structured pruning make models really faster? MACs reduction vs measured latency speedup.

For resnet18 and resnet50 at 30/50/70% of channels removed (L1 importance, uniform ratio, widths
rounded to multiples of 8), next to the dense model and a 50% unstructured-sparse copy (masks
folded in: same shapes, half the weights zero) measured in the same run: parameters, MACs
(torchprofile), and median latency at batch 1 and 16.

Honest timing: one process, one thread setting for every variant, warm-up first, then rounds in
which every variant runs once in turn (so load from other processes hits all variants alike), and
the median per variant. Random-init weights: latency does not depend on the values.

Every variant runs in the channels_last memory format, PyTorch's recommended layout for CNN
inference on CPU (oneDNN); the dense baseline gets it too, so the comparison is like with like. The
default contiguous (NCHW) layout is measured as well at batch 16 and printed beside it. The default
is one thread (single-stream latency; on a shared machine a second OpenMP thread mostly waits for a
descheduled partner); ``--threads N`` changes it.

Target: at batch 16 the latency speedup is at least 0.8 x the MACs reduction, for resnet18 at 50%
(the speedup counted is the lower of the wall-clock and the CPU-time one, see interleaved_latency):
    RESULT latency_over_macs=<x> target=>=0.8 PASS|FAIL
Usage: python bench/structured.py [--quick] [--device cuda] [--size 112] [--rounds N] [--threads N]
"""
from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine.config import PruneSpec, StructuredSpec  # noqa: E402
from engine.metrics import count_macs  # noqa: E402
from engine.models.architectures import build_architecture  # noqa: E402
from engine.pruning.apply import make_permanent, prune_model  # noqa: E402
from engine.pruning.base import PruneContext  # noqa: E402
from engine.structured.remove import prune_channels  # noqa: E402

TARGET = 0.8
BATCHES = (1, 16)


def variants(arch: str, ratios: list[float], size: int) -> list[tuple[str, torch.nn.Module]]:
    torch.manual_seed(0)
    dense = build_architecture(arch, 1000).eval()
    out = [("dense", dense)]
    unstructured = copy.deepcopy(dense)
    prune_model(unstructured, PruneSpec(method="l1", scope="global", sparsity=0.5),
                PruneContext(unstructured))
    make_permanent(unstructured)
    out.append(("unstructured 50%", unstructured))
    example = torch.randn(1, 3, size, size)
    for ratio in ratios:
        spec = StructuredSpec(enabled=True, ratio=ratio, importance="l1", scope="uniform", round_to=8)
        out.append((f"channels -{ratio:.0%}", prune_channels(dense, example, spec).model.eval()))
    return out


@torch.no_grad()
def interleaved_latency(models: list[torch.nn.Module], batch: int, size: int, rounds: int,
                        device: torch.device, channels_last: bool = True) -> tuple[list[float], list[float]]:
    """Median ms per forward for each model, timed in interleaved rounds: (wall clock, CPU time of
    this process). On a machine shared with other jobs the wall clock of a long forward absorbs
    more preemption than a short one's median does, which flatters the smaller model; CPU time does
    not see preemption, so both are reported and the target uses the less favourable."""
    x = torch.randn(batch, 3, size, size, device=device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
        models = [copy.deepcopy(m).to(memory_format=torch.channels_last) for m in models]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    repeat = 3 if batch == 1 else 1   # batch-1 forwards are short: time a few per sample
    for m in models:
        for _ in range(3):
            m(x)
    sync()
    wall: list[list[float]] = [[] for _ in models]
    cpu: list[list[float]] = [[] for _ in models]
    for _ in range(rounds):
        for i, m in enumerate(models):
            sync()
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(repeat):
                m(x)
            sync()
            wall[i].append((time.perf_counter() - start) / repeat * 1000.0)
            cpu[i].append((time.process_time() - start_cpu) / repeat * 1000.0)
    if device.type == "cuda":  # host CPU time says nothing about GPU work: wall clock only
        cpu = wall
    return [statistics.median(s) for s in wall], [statistics.median(s) for s in cpu]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only resnet18 at 50%%")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--size", type=int, default=112, help="input height and width (default 112)")
    parser.add_argument("--rounds", type=int, help="timed rounds per batch size")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device is available", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    archs = ["resnet18"] if args.quick else ["resnet18", "resnet50"]
    ratios = [0.5] if args.quick else [0.3, 0.5, 0.7]
    rounds = args.rounds or (15 if args.quick else 7)
    started = time.perf_counter()
    where = torch.cuda.get_device_name() if device.type == "cuda" else (platform.processor() or platform.machine())
    print(f"bench/structured.py  {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC  torch {torch.__version__}  "
          f"{device.type} ({where}), {torch.get_num_threads()} threads")
    print(f"input 3x{args.size}x{args.size}, 1000 classes, channels_last, {rounds} interleaved rounds per "
          f"batch size, median; speedup and MACs reduction are dense / variant; NCHW: batch 16 "
          f"in the default NCHW layout")
    header = (f"{'model':<9} {'variant':<17} {'params':>9} {'MACs':>10} {'MACs red.':>9} "
              + " ".join(f"{'b' + str(b) + ' ms':>9} {'b' + str(b) + ' speedup':>11}" for b in BATCHES)
              + f" {'b16 cpu-time speedup':>20} {'NCHW b16 speedup':>16} {'b16 speedup/MACs red.':>21}")
    print(header)
    print("-" * len(header))
    result = None
    for arch in archs:
        named = variants(arch, ratios, args.size)
        example = torch.randn(1, 3, args.size, args.size)
        macs = [count_macs(m, example)[0] for _, m in named]
        params = [sum(p.numel() for p in m.parameters()) for _, m in named]
        models = [m.to(device) for _, m in named]
        timed = {b: interleaved_latency(models, b, args.size, rounds, device) for b in BATCHES}
        latency = {b: wall for b, (wall, _) in timed.items()}
        cpu16 = timed[16][1]
        nchw = interleaved_latency(models, 16, args.size, rounds, device, channels_last=False)[0]
        for i, (label, _) in enumerate(named):
            reduction = macs[0] / macs[i]
            speedups = {b: latency[b][0] / latency[b][i] for b in BATCHES}
            cpu_speedup = cpu16[0] / cpu16[i]
            # the less favourable of wall-clock and CPU-time speedup (see interleaved_latency)
            ratio = min(speedups[16], cpu_speedup) / reduction
            print(f"{arch:<9} {label:<17} {params[i] / 1e6:>8.2f}M {macs[i] / 1e6:>9.1f}M "
                  f"{reduction:>8.2f}x "
                  + " ".join(f"{latency[b][i]:>9.2f} {speedups[b]:>10.2f}x" for b in BATCHES)
                  + f" {cpu_speedup:>19.2f}x {nchw[0] / nchw[i]:>15.2f}x {ratio:>21.2f}")
            if arch == "resnet18" and label == "channels -50%":
                result = (reduction, speedups[16], cpu_speedup, ratio, nchw[0] / nchw[i])
        for m in models:
            m.cpu()
    reduction, speedup, cpu_speedup, ratio, nchw_speedup = result
    print(f"\nresnet18 at 50% channels removed: MACs reduction {reduction:.2f}x (needs >= 1.8); "
          f"{device.type} batch-16 latency speedup {speedup:.2f}x wall clock, {cpu_speedup:.2f}x CPU "
          f"time, channels_last (needs >= {TARGET} x {reduction:.2f} = {TARGET * reduction:.2f}x); "
          f"NCHW layout {nchw_speedup:.2f}x wall clock (latency/MACs {nchw_speedup / reduction:.2f})")
    print(f"total time {time.perf_counter() - started:.0f} s")
    ok = ratio >= TARGET and reduction >= 1.8
    print(f"RESULT latency_over_macs={ratio:.2f} target=>={TARGET} {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Fine-tuning throughput of PruneLab's distributed path against one process, same global batch.

Both sides run the engine's own ``engine.finetune.finetune`` on a resnet18 (random init, seeded) and
random 64x64 images: the reference as one process with one thread (the plain loop), ours as N
processes with one thread each in a gloo process group (``DistributedDataParallel``, a
``DistributedSampler``, each rank taking 1/N of every global batch, one all-reduce of loss and stop
flag per step), which is what ``torchrun --nproc_per_node=N main.py --headless`` runs. Throughput
is global samples per second over the timed steps (the first steps warm up and are not timed).
With ``--device cuda`` ours uses every visible GPU (NCCL) against one GPU.

    python bench/ddp.py [--quick] [--device cpu|cuda] [--procs N] [--batch B] [--steps S]

    RESULT ddp_scaling=<ours / reference> target=>=1.6 PASS|FAIL

On a shared machine the ratio is only as good as the idle cores: the load average is printed
beside it. Exits 0 whether the target passes or fails; only a crash gives a non-zero status.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

TARGET = 1.6
WARMUP_STEPS = 2


def _bundle(samples: int):
    from torch.utils.data import TensorDataset
    from engine.data.sources import DataBundle
    g = torch.Generator().manual_seed(0)
    images = torch.randn(samples, 3, 64, 64, generator=g)
    labels = torch.randint(0, 10, (samples,), generator=g)
    test = TensorDataset(images[:4], labels[:4])
    return DataBundle(TensorDataset(images, labels), test, 10, (3, 64, 64), "random 64x64 images")


def _train(device: str, batch: int, steps: int) -> float:
    """Runs the engine's fine-tuning for ``WARMUP_STEPS + steps`` global batches in this process
    (one rank, or the only process) and returns the seconds the timed steps took."""
    import torchvision
    from engine.config import FinetuneSpec
    from engine.finetune import finetune
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    if device == "cuda":
        model.to(torch.device("cuda", torch.cuda.current_device()))
    total = WARMUP_STEPS + steps
    stamps: dict[int, float] = {}

    def on_step(step: int, _loss: float) -> None:
        if device == "cuda":
            torch.cuda.synchronize()
        stamps[step] = time.perf_counter()

    spec = FinetuneSpec(epochs=1, batch_size=batch, lr=0.01, momentum=0.9,
                        max_batches_per_epoch=total, device=device)
    finetune(model, _bundle(batch * total), spec, seed=0, on_step=on_step)
    return stamps[total] - stamps[WARMUP_STEPS]


def _rank(rank: int, world: int, port: int, device: str, batch: int, steps: int, results) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from engine import distributed
    distributed.start(device)
    try:
        seconds = _train(device, batch, steps)
    finally:
        distributed.stop()
    results.put((rank, seconds))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single(device: str, batch: int, steps: int, results) -> None:
    torch.set_num_threads(1)
    results.put((0, _train(device, batch, steps)))


def _alone(rank: int, device: str, batch: int, steps: int, results) -> None:
    """One of N processes training side by side with no process group: what N ranks could do
    if communication cost nothing (the ceiling for data parallelism on these cores)."""
    torch.set_num_threads(1)
    if device == "cuda":
        torch.cuda.set_device(rank)
    results.put((rank, _train(device, batch, steps)))


def run(processes: int, device: str, batch: int, steps: int, together: bool = True) -> float:
    """Global samples per second; ``processes`` 0 is the single-process reference (no process
    group at all); ``together`` False runs the processes side by side without a process group,
    each on its share of the batch. Each side runs in fresh processes so none inherits
    another's state."""
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    if processes == 0:
        workers = [ctx.Process(target=_single, args=(device, batch, steps, results))]
    elif not together:
        workers = [ctx.Process(target=_alone, args=(r, device, batch // processes, steps, results))
                   for r in range(processes)]
    else:
        port = _free_port()
        workers = [ctx.Process(target=_rank, args=(r, processes, port, device, batch, steps,
                                                    results)) for r in range(processes)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if any(w.exitcode for w in workers):
        raise SystemExit(f"a worker failed (exit codes {[w.exitcode for w in workers]})")
    seconds = max(results.get()[1] for _ in workers)   # the job is as fast as its slowest rank
    return batch * steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed steps")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--procs", type=int, help="processes for ours (default: 2 on CPU, every "
                        "visible GPU on CUDA)")
    parser.add_argument("--batch", type=int, default=32, help="global batch (default 32)")
    parser.add_argument("--steps", type=int, help="timed steps (default 12, --quick 6)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here; nothing to measure with --device cuda")
        print("RESULT ddp_scaling=skipped target=>=1.6 SKIP")
        return
    procs = args.procs or (torch.cuda.device_count() if args.device == "cuda" else 2)
    steps = args.steps or (6 if args.quick else 12)
    if args.batch % procs:
        raise SystemExit(f"--batch {args.batch} must split evenly over {procs} processes")
    if args.device == "cuda" and procs < 2:
        print("only one GPU visible: the scaling is not measurable")
    unit = "process x 1 thread" if args.device == "cpu" else "GPU"
    print(f"resnet18, 64x64 images, global batch {args.batch}, {steps} timed steps after "
          f"{WARMUP_STEPS} warm-up, {args.device}")
    reference = run(0, args.device, args.batch, steps)
    print(f"reference  1 {unit:<20} {reference:8.1f} samples/s")
    ours = run(procs, args.device, args.batch, steps)
    print(f"ours       {procs} {unit + ('s' if procs > 1 else ''):<20} {ours:8.1f} samples/s "
          f"(DistributedDataParallel, {args.batch // procs} per rank)")
    ceiling = run(procs, args.device, args.batch, steps, together=False)
    print(f"ceiling    {procs} {unit + ('s' if procs > 1 else ''):<20} {ceiling:8.1f} samples/s "
          f"(side by side, {args.batch // procs} each, no communication: "
          f"{ceiling / reference:.2f}x at most; ours reaches {ours / ceiling:.0%} of it)")
    ratio = ours / reference
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print(f"RESULT ddp_scaling={ratio:.2f} target=>={TARGET} {'PASS' if ratio >= TARGET else 'FAIL'}")


if __name__ == "__main__":
    main()

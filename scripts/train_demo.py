"""Train the demo LeNet on the built-in distorted digits and write ``resources/lenet_digits.pt``.

Writes, atomically (temp file + os.replace):

* ``resources/lenet_digits.pt``   plain state_dict of ``engine.models.lenet.LeNet``
  (``torch.load(p, weights_only=True)``, then ``LeNet().load_state_dict(sd, strict=True)``)
* ``resources/lenet_digits.json`` training settings, per-epoch loss and the test accuracy

The demo data (``engine/data/distorted_digits.py``) are distortions of the shipped 8x8 digits.
Training uses the base images of the 1,437-image training split less the 144 whose distortions
PruneLab holds out as its validation split (``data.val_fraction`` 0.1, a fixed draw), so that
validation is unseen by this checkpoint too; every epoch draws fresh distortions of those base
images (same distortion settings as the demo, a generator seeded from ``--seed``). The 2,160-image
test split (distortions of the 360 test base images) is evaluated once, at the end. ``--val``
instead holds out a stratified 20% of the training base images and reports accuracy on
``TEST_VARIANTS`` fixed distortions of them, writing nothing: that is how the settings below were
chosen, so the test split played no part in choosing them.

Seeded and deterministic on CPU (same machine, same thread count -> same weights).
Runs in about a minute on one CPU core.

Usage:  python scripts/train_demo.py [--epochs N] [--val] [--no-write]
"""
from __future__ import annotations

import argparse
import io
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine.config import DataSpec  # noqa: E402
from engine.data.digits import load_digits_arrays, upscale_digits  # noqa: E402
from engine.data.distorted_digits import (  # noqa: E402
    DEMO_MEAN, DEMO_STD, TEST_VARIANTS, demo_datasets, distort, normalize_demo)
from engine.data.sources import DataBundle, hold_out_validation  # noqa: E402
from engine.io import atomic_write_bytes  # noqa: E402
from engine.models.lenet import LeNet  # noqa: E402

OUT_PT = REPO / "resources" / "lenet_digits.pt"
OUT_JSON = REPO / "resources" / "lenet_digits.json"


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    model.eval()
    pred = model(x).argmax(1)
    correct = int((pred == y).sum())
    return correct / len(y), correct


def stratified_holdout(y: torch.Tensor, frac: float, gen: torch.Generator):
    keep, held = [], []
    for c in range(10):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        k = round(len(idx) * frac)
        held.append(idx[:k])
        keep.append(idx[k:])
    return torch.cat(keep).sort().values, torch.cat(held).sort().values


def validation_draw(n_train: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(trained-on, held-out) indices of the training split: exactly what ``load_data`` holds out
    at the default ``data.val_fraction``."""
    bundle = DataBundle(list(range(n_train)), [], 10, (1, 28, 28), "indices")
    hold_out_validation(bundle, DataSpec().val_fraction)
    return torch.tensor(bundle.train.indices), torch.tensor(bundle.val.indices)


def train(args) -> dict:
    # LeNet on 28x28 is far too small to gain from intra-op threads (with 2 cores, a second
    # thread mostly adds synchronisation cost), and a fixed thread count keeps the floating-point
    # reduction order, hence the trained weights, reproducible.
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(args.seed)

    arrays = load_digits_arrays()
    base_idx = torch.as_tensor(arrays.train_idx.astype("int64"))
    clean = upscale_digits(arrays.images[arrays.train_idx])
    labels = torch.as_tensor(arrays.labels[arrays.train_idx].astype("int64"))
    train_ds, test_ds = demo_datasets()
    x_te, y_te = test_ds.tensors
    # PruneLab holds a fixed share of the training split out as its validation split (what picks
    # the kept fine-tuning epoch and drives the sensitivity scan); the demo checkpoint must not
    # have seen those base digits, or its validation accuracy would read high whatever is pruned.
    # The training split holds one distortion per base digit, in base order, so its indices are
    # the base digits' positions.
    fit_idx, val_idx = validation_draw(len(base_idx))
    x_val, y_val = train_ds.tensors[0][val_idx], train_ds.tensors[1][val_idx]
    clean_tr, y_tr = clean[fit_idx], labels[fit_idx]
    eval_name = "test"
    if args.val:
        keep, held = stratified_holdout(y_tr, 0.2, torch.Generator().manual_seed(args.seed + 1))
        held_gen = torch.Generator().manual_seed(args.seed + 2)
        x_te = normalize_demo(torch.cat([distort(clean_tr[held], held_gen)
                                         for _ in range(TEST_VARIANTS)]))
        y_te = y_tr[held].repeat(TEST_VARIANTS)
        clean_tr, y_tr = clean_tr[keep], y_tr[keep]
        eval_name = "val"

    model = LeNet(num_classes=10)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(y_tr) / args.batch_size)
    total = args.epochs * steps_per_epoch
    warmup = steps_per_epoch  # one epoch of linear warm-up, then cosine decay to zero
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (s + 1) / warmup if s < warmup
        else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup))),
    )

    history = []
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        x_tr = normalize_demo(distort(clean_tr, gen))   # fresh distortions every epoch
        perm = torch.randperm(len(y_tr), generator=gen)
        loss_sum, n = 0.0, 0
        for start in range(0, len(perm), args.batch_size):
            idx = perm[start : start + args.batch_size]
            xb = x_tr[idx]
            yb = y_tr[idx]
            loss = F.cross_entropy(model(xb), yb, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            n += len(idx)
        entry = {"epoch": epoch, "train_loss": round(loss_sum / n, 5)}
        if args.verbose:
            entry[f"{eval_name}_acc"] = round(accuracy(model, x_te, y_te)[0], 5)
            print(entry, flush=True)
        history.append(entry)
    seconds = time.perf_counter() - t0

    train_acc, _ = accuracy(model, x_tr, y_tr)
    val_acc, _ = accuracy(model, x_val, y_val)
    acc, correct = accuracy(model, x_te, y_te)
    return {
        "val_acc": val_acc,
        "n_val": len(y_val),
        "model": model,
        "eval_name": eval_name,
        "acc": acc,
        "correct": correct,
        "n_eval": len(y_te),
        "train_acc": train_acc,
        "n_train": len(y_tr),
        "history": history,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--label-smoothing", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--val", action="store_true",
                    help="hold out 20%% of the training split, report on it, write nothing")
    ap.add_argument("--no-write", action="store_true", help="train and report, write nothing")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every epoch")
    args = ap.parse_args(argv)

    r = train(args)
    print(f"trained {args.epochs} epochs on {r['n_train']} images in {r['seconds']:.1f} s "
          f"(train accuracy {r['train_acc']:.4f}, held-out validation {r['val_acc']:.4f} "
          f"on {r['n_val']})")
    if args.val or args.no_write:
        print(f"{r['eval_name']} accuracy: {r['acc']:.4f} ({r['correct']}/{r['n_eval']})")
        return 0

    buf = io.BytesIO()
    torch.save(r["model"].state_dict(), buf)
    atomic_write_bytes(OUT_PT, buf.getvalue())
    meta = {
        "model": "engine.models.lenet.LeNet",
        "num_classes": 10,
        "checkpoint": OUT_PT.name,
        "format": "state_dict; torch.load(path, weights_only=True); load_state_dict(strict=True)",
        "data": {
            "file": "resources/digits.npz",
            "loader": "engine.data.distorted_digits.demo_datasets(normalize=True)",
            "input": "1x28x28 float32: 8x8 grey 0..16 -> /16 -> bilinear 20x20 -> pad 4 -> "
                     "distort (DEMO_DISTORTION) -> 8-bit",
            "normalize": {"mean": DEMO_MEAN, "std": DEMO_STD},
            "n_train": r["n_train"],
            "n_validation_held_out": r["n_val"],
            "n_test": r["n_eval"],
            "validation": "the fixed draw PruneLab holds out of the training split "
                          "(engine.data.sources.hold_out_validation at the default "
                          "data.val_fraction) is not trained on",
        },
        "training": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": "AdamW",
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "schedule": "1 epoch linear warm-up, cosine decay to 0 (per step)",
            "label_smoothing": args.label_smoothing,
            "augmentation": "fresh distortions of the training base images every epoch "
                            "(the demo's own DEMO_DISTORTION settings)",
            "seed": args.seed,
            "deterministic": True,
            "settings_chosen_on": "20% stratified hold-out of the training split (--val)",
        },
        "train_accuracy": round(r["train_acc"], 5),
        "validation_accuracy": round(r["val_acc"], 5),
        "test_accuracy": round(r["acc"], 5),
        "test_correct": r["correct"],
        "train_seconds": round(r["seconds"], 1),
        "torch": torch.__version__.split("+")[0],
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "history": r["history"],
    }
    atomic_write_bytes(OUT_JSON, (json.dumps(meta, indent=2) + "\n").encode())
    print(f"wrote {OUT_PT.relative_to(REPO)} ({OUT_PT.stat().st_size:,} bytes) and "
          f"{OUT_JSON.relative_to(REPO)}")
    print(f"test accuracy: {r['acc']:.4f} ({r['correct']}/{r['n_eval']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

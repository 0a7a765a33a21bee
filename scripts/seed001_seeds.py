"""Runs the reference LeNet recipe (``recipes/lenet_seed001.json``) on the demo with several
``seed`` values and prints each run's accuracies and their mean and spread: the README's figures.

Nothing is exported; latency is not measured.

Usage:  python scripts/seed001_seeds.py [--seeds 1 2 3 4 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine.config import Recipe  # noqa: E402
from engine.paths import RECIPES  # noqa: E402
from engine.pipeline import run_recipe  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--recipe", type=Path, default=RECIPES / "lenet_seed001.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    finals, dense = [], None
    for seed in args.seeds:
        recipe = Recipe.load(args.recipe)
        recipe.seed = seed
        recipe.export = replace(recipe.export, path=None)
        recipe.metrics = replace(recipe.metrics, measure_latency=False)
        start = time.perf_counter()
        result = run_recipe(recipe)
        dense = result.original.accuracy
        finals.append(result.final.accuracy)
        per_epoch = " ".join(f"{e.test.accuracy:.2%}" for e in result.finetune.epochs)
        print(f"seed {seed}: dense {dense:.2%}, pruned {result.after_prune.accuracy:.2%}, "
              f"fine-tuned {result.final.accuracy:.2%} (kept epoch {result.finetune.best_epoch}; "
              f"test per epoch {per_epoch}) {time.perf_counter() - start:.0f} s", flush=True)
    mean = statistics.mean(finals)
    spread = statistics.stdev(finals) if len(finals) > 1 else 0.0
    print(f"fine-tuned over seeds {args.seeds}: mean {mean:.2%} +/- {spread:.2%} (sample std), "
          f"min {min(finals):.2%}, max {max(finals):.2%}; dense {dense:.2%}; "
          f"mean gap to dense {(dense - mean) * 100:.2f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Headless PruneLab: run a recipe from the terminal with a progress bar and print the table.

Bad input ends with one clear line on stderr and a non-zero exit, never a traceback (``--debug``
shows one). Ctrl-C stops cleanly between batches.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional, TextIO

from engine.config import Recipe, RecipeError
from engine.distributed_env import (check_distributed_recipe, env_rank, is_peer_failure,
                                    launched_by_torchrun)
from engine.messages import one_line
from engine.metrics import format_table
from engine.outputs import check_recipe_outputs
from engine.paths import RECIPES
from engine.progress import Cancelled, CancelToken, Progress

EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130


class TerminalProgress:
    """One self-overwriting line: stage, bar, step/total, loss and ETA."""

    def __init__(self, stream: TextIO, width: int = 28) -> None:
        self.stream = stream
        self.width = width
        self.interactive = stream.isatty()
        self._stage = None
        self._last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        final = p.total and p.step >= p.total
        if p.stage == self._stage and not final and now - self._last < (0.1 if self.interactive else 2.0):
            return
        if p.stage != self._stage and self._stage is not None and self.interactive:
            self.stream.write("\n")
        self._stage, self._last = p.stage, now
        filled = int(self.width * p.fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        parts = [f"{p.stage:<18}", f"[{bar}]"]
        if p.total:
            parts.append(f"{p.step}/{p.total}")
        if p.loss is not None:
            parts.append(f"loss {p.loss:.4f}")
        if p.eta_s is not None and not final:
            parts.append(f"ETA {_duration(p.eta_s)}")
        if p.message:
            parts.append(p.message)
        line = " ".join(parts)
        self.stream.write(("\r" + line.ljust(100)) if self.interactive else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.interactive and self._stage is not None:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


def build_parser() -> argparse.ArgumentParser:
    program = "prunelab" if Path(sys.argv[0]).name == "prunelab" else "python main.py"
    parser = argparse.ArgumentParser(
        prog=f"{program} --headless",
        description="Run a PruneLab recipe without the window: load, prune, fine-tune, measure, export.")
    parser.add_argument("recipe", nargs="?", default=str(RECIPES / "lenet_seed001.json"),
                        help="recipe JSON file (default: the LeNet recipe of the reference tutorial)")
    parser.add_argument("--epochs", type=int, help="override finetune.epochs")
    parser.add_argument("--export", metavar="PATH", help="override export.path (.pt or .safetensors)")
    parser.add_argument("--model-weights", metavar="PATH",
                        help="override model.weights (a state_dict for a model from your Python "
                             "file: .pt, .pth or .safetensors)")
    parser.add_argument("--no-latency", action="store_true", help="skip latency measurement")
    parser.add_argument("--verify", action="store_true",
                        help="load every exported file in a fresh process and check its outputs "
                             "against the live model (exit 1 if they differ)")
    parser.add_argument("--json", metavar="PATH", help="also write the result table as JSON here")
    parser.add_argument("--preflight", action="store_true",
                        help="only check which channel groups the recipe's structured pruning can "
                             "remove and which it must keep whole (and why); changes nothing")
    parser.add_argument("--explain", action="store_true",
                        help="after the run, measure why the pruned model is (not) faster: latency "
                             "over batch sizes 1-64 and both memory layouts, storage format, "
                             "sparse kernels on this machine, and a verdict")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        recipe = Recipe.load(args.recipe)
        if args.epochs is not None:
            recipe.finetune = replace(recipe.finetune, epochs=args.epochs)
        if args.export is not None:
            recipe.export = replace(recipe.export, path=args.export)
        if args.model_weights is not None:
            recipe.model = replace(recipe.model, weights=args.model_weights)
            if not Path(args.model_weights).expanduser().is_file():
                raise ValueError(f"--model-weights: file not found: {args.model_weights}")
        if args.no_latency:
            recipe.metrics = replace(recipe.metrics, measure_latency=False)
        if args.verify:
            if not recipe.export.path:
                raise RecipeError("--verify checks an export: give --export PATH or export.path")
            recipe.export = replace(recipe.export, verify=True)
        recipe.validate()
        # every output against every input and for writability, before minutes of work
        check_recipe_outputs(recipe, Path(args.recipe), Path(args.json) if args.json else None)
        if launched_by_torchrun():
            check_distributed_recipe(recipe, int(os.environ["WORLD_SIZE"]))
    except Exception as exc:   # RecipeError, OutputError, or anything a hostile file provokes
        if args.debug:
            raise
        if env_rank() == 0:   # every rank of a torchrun job finds the same fault: say it once
            print(f"prunelab: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT

    if launched_by_torchrun():
        return _run_distributed(args, recipe)
    return _run(args, recipe)


def _run_distributed(args, recipe: Recipe) -> int:
    """One rank of ``torchrun ... main.py --headless RECIPE``: rank 0 shows progress, prints and
    writes; the other ranks work silently (and skip latency timing, which they would disturb)."""
    from engine import distributed
    try:
        run = distributed.start(recipe.finetune.device)
    except (ValueError, RuntimeError) as exc:
        print(f"prunelab: rank {env_rank()}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        if not run.is_main:
            args.quiet, args.json = True, None
            recipe.metrics = replace(recipe.metrics, measure_latency=False)
        code = _run(args, recipe, rank=run.rank)
        if code == 0:   # a rank that failed is not waited for: the others see it gone
            distributed.finish_together()
        return code
    finally:
        distributed.stop()


def _run(args, recipe: Recipe, rank: Optional[int] = None) -> int:
    """``rank`` is None outside torchrun; rank 0 speaks for the job, other ranks only about their
    own failures."""
    from engine.pipeline import run_recipe  # torch import deferred so --help is instant

    speaks = rank in (None, 0)
    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    bar = None if args.quiet else TerminalProgress(sys.stderr)

    def log(message: str) -> None:
        if not speaks:
            return
        if bar is not None:
            bar.close()
            bar._stage = None
        print(f"  {message}", file=sys.stderr)

    if speaks:
        print(f"PruneLab: running recipe '{recipe.name}'"
              + (f" on {os.environ['WORLD_SIZE']} processes" if rank is not None else ""),
              file=sys.stderr)
    try:
        if args.preflight:
            from engine.pipeline import run_preflight
            report = run_preflight(recipe, progress=bar, cancel=cancel, log=log)
            if bar is not None:
                bar.close()
            print("\n".join(report.lines()))
            if args.json:
                from engine.io import atomic_write_text
                atomic_write_text(Path(args.json), json.dumps(report.as_dict(), indent=2))
            return 0
        result = run_recipe(recipe, progress=bar, cancel=cancel, log=log, explain=args.explain)
    except Cancelled:
        if speaks:
            print("prunelab: stopped by the user; nothing was exported", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as exc:  # one clear line for the user; --debug for the developer
        if bar is not None:
            bar.close()
        if args.debug:
            raise
        if rank is not None and is_peer_failure(exc):
            return 1   # another rank failed first and said why; torchrun stops the job
        where = f"rank {rank}: " if rank else ""
        print(f"prunelab: {one_line(f'{where}{one_line(exc)}')}", file=sys.stderr)
        return EXIT_BAD_INPUT if isinstance(exc, (ValueError, OSError, KeyError)) else 1
    finally:
        signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()

    if not speaks:
        return 0
    if result.finetune is not None and result.finetune.epochs:
        print("\nAfter pruning, before fine-tuning:")
        print(format_table(result.after_prune_table))
        chosen = "best validation accuracy" if any(e.val for e in result.finetune.epochs) \
            else "last"
        print(f"\nAfter fine-tuning ({len(result.finetune.epochs)} epoch(s), kept epoch "
              f"{result.finetune.best_epoch}, {chosen}):")
    else:
        print()
    print(format_table(result.table))
    if result.structured is not None:
        print("\n" + result.structured.summary)
        print("Layer widths (out channels/features, before -> after): " + ", ".join(
            f"{w.name} {w.out_before}->{w.out_after}" for w in result.structured.layers
            if w.changed and w.out_before != w.out_after))
    else:
        print("\nPer-layer sparsity: " + ", ".join(f"{k} {v:.2%}" for k, v in result.layer_sparsity.items()))
    if result.group is not None:
        group = result.group
        print(f"Sparsity of the pruned group ({len(group.names)} parameter(s), {group.numel:,} "
              f"weights): {group.sparsity:.4f}")
    if result.corner is not None:
        from engine.snapshots import format_matrix
        size = "x".join(str(n) for n in result.corner.before.shape)
        print(f"\n{result.corner.name} (top-left {size}) before:\n{format_matrix(result.corner.before)}")
        print(f"after:\n{format_matrix(result.corner.after)}")
    if result.schedule is not None and result.schedule.rounds:
        print(f"\nSchedule {result.schedule.kind}: " + ", ".join(
            f"step {r.step} {r.sparsity:.1%}" + (f" acc {r.accuracy:.2%}" if r.accuracy is not None
                                                else "")
            for r in result.schedule.rounds)
            + (f" ({result.schedule.stopped})" if result.schedule.stopped else ""))
    if result.explanation is not None:
        print("\n" + "\n".join(result.explanation.lines()))
    if result.distributed is not None:
        print(_agreement_line(result.distributed))
    for path in result.exported:
        print(f"wrote {path}")
    if result.verification is not None:
        print("\nVerified in fresh processes (each file loaded as a user elsewhere would):")
        for line in result.verification.lines():
            print("  " + line)
    if args.json:
        try:
            _write_json(Path(args.json), result)
        except OSError as exc:
            print(f"prunelab: {one_line(f'cannot write {args.json}: {exc.strerror or exc}')}",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
    if result.verification is not None and not result.verification.ok:
        print("prunelab: the export does not verify: " + "; ".join(
            f"{c.kind}: {c.error}" for c in result.verification.checks if c.error), file=sys.stderr)
        return 1
    return 0


def _agreement_line(checks: dict) -> str:
    def yes(key: str) -> str:
        return "yes" if checks[key] else "NO"
    return (f"Fine-tuned on {checks['world_size']} processes ({checks['backend']}): masks as at "
            f"pruning: {yes('masks_unchanged_since_pruning')}; masks identical "
            f"on every rank: {yes('masks_identical_across_ranks')}; weights identical: "
            f"{yes('parameters_identical_across_ranks')}; pruned weights still exactly zero on "
            f"every rank: {yes('pruned_weights_zero_on_every_rank')}")


def _write_json(path: Path, result) -> None:
    """The result's tables and traces as JSON; ``after_prune`` is null where no single
    after-pruning measurement exists (a schedule prunes and trains in turns)."""
    from dataclasses import asdict
    from engine.io import atomic_write_text
    schedule = result.schedule
    document = {
        "table": [asdict(r) for r in result.table],
        "after_prune": None if result.after_prune_table is None
        else [asdict(r) for r in result.after_prune_table],
        "layer_sparsity": result.layer_sparsity,
        "layer_widths": [asdict(w) for w in result.structured.layers]
        if result.structured is not None else None,
        "group_sparsity": None if result.group is None else
        {"names": list(result.group.names), "numel": result.group.numel,
         "zeros": result.group.zeros, "sparsity": result.group.sparsity},
        "corner": None if result.corner is None else
        {"name": result.corner.name, "before": result.corner.before.tolist(),
         "after": result.corner.after.tolist()},
        "sparsity_trace": schedule.sparsity_trace if schedule else None,
        "schedule_rounds": [asdict(r) for r in schedule.rounds] if schedule else None,
        "sensitivity": asdict(result.sensitivity) if result.sensitivity else None,
        "proposed_ratios": result.proposed_ratios,
        "explanation": result.explanation.as_dict() if result.explanation is not None else None,
        "finetune": None if result.finetune is None else
        {"best_epoch": result.finetune.best_epoch,
         "epochs": [{"epoch": e.epoch, "train_loss": e.train_loss, "test_loss": e.test.loss,
                     "test_accuracy": e.test.accuracy, "test_samples": e.test.samples}
                    for e in result.finetune.epochs]},
        "distributed": result.distributed,
        "verification": None if result.verification is None else
        {"ok": result.verification.ok, "tolerance": result.verification.tolerance,
         "checks": [asdict(c) for c in result.verification.checks]}}
    atomic_write_text(path, json.dumps(document, indent=2))


if __name__ == "__main__":
    sys.exit(main())

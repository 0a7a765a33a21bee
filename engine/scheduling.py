"""Running a pruning schedule (:mod:`engine.pruning.schedules`) on a :class:`~engine.session.Session`.

Every schedule records the sparsity of the selected weights against the training step
(``ScheduleResult.sparsity_trace``, plain (step, sparsity) pairs) so the Training tab can plot it
beside loss and accuracy; ``on_sparsity(step, sparsity)`` reports each point as it happens. Steps
count optimizer steps across all fine-tuning of the schedule (an iterative schedule's rounds
continue one axis).
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

import torch
from torch import nn

from engine.config import FinetuneSpec, PruneSpec, ScheduleSpec
from engine.counting import count_nonzero
from engine.finetune import EpochResult, FinetuneResult
from engine.metrics import eval_batch_size, evaluate, model_device
from engine.progress import CancelToken, ProgressFn
from engine.pruning.apply import PruneOutcome, has_masks, prune_model
from engine.pruning.base import GRANULARITIES, PruneContext, PruneError
from engine.pruning.schedules import SCHEDULES, gradual_plan
from engine.pruning.targets import select_targets

if TYPE_CHECKING:
    from engine.session import Session


@dataclass(frozen=True)
class RoundResult:
    """One pruning step of a schedule: its target, the sparsity reached, accuracy after it."""
    round: int
    step: int
    target: float
    sparsity: float
    accuracy: Optional[float] = None


@dataclass
class ScheduleResult:
    kind: str
    sparsity_trace: list[tuple[int, float]] = field(default_factory=list)
    rounds: list[RoundResult] = field(default_factory=list)
    finetune: list[FinetuneResult] = field(default_factory=list)
    outcome: Optional[PruneOutcome] = None
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    stopped: str = ""          # why the schedule ended early ("" when it ran to the end)

    @property
    def epochs(self) -> list[EpochResult]:
        return [e for ft in self.finetune for e in ft.epochs]


def scaled_spec(spec: PruneSpec, fraction: Callable[[float], float]) -> PruneSpec:
    """The spec with its sparsity and every per-layer sparsity s replaced by ``fraction(s)``."""
    per_layer = {k: fraction(v) for k, v in spec.per_layer.items()} if spec.per_layer else None
    return dataclasses.replace(spec, sparsity=fraction(spec.sparsity), per_layer=per_layer,
                               make_permanent=False, sensitivity=None)


def selected_sparsity(model: nn.Module, spec: PruneSpec) -> float:
    """Fraction of zeros over the weights the spec selects (by parameter count)."""
    zeros = total = 0
    with torch.no_grad():
        for t in select_targets(model, spec.include, spec.exclude):
            w = t.weight()
            zeros += w.numel() - count_nonzero(w)
            total += w.numel()
    return zeros / total if total else 0.0


def reinitialise(model: nn.Module, seed: int) -> int:
    """Fresh initial weights (each module's own ``reset_parameters``), seeded; returns how many
    modules were reset."""
    torch.manual_seed(seed)
    count = 0
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
            count += 1
    return count


def training_steps(session: "Session", spec: FinetuneSpec) -> int:
    """Optimizer steps a fine-tuning run with ``spec`` will take (as engine.finetune counts them)."""
    batches = math.ceil(len(session.data.train) / spec.batch_size)
    if spec.max_batches_per_epoch is not None:
        batches = min(batches, spec.max_batches_per_epoch)
    return spec.epochs * batches


def run_schedule(session: "Session", prune_spec: PruneSpec, finetune_spec: FinetuneSpec,
                 schedule: ScheduleSpec, progress: Optional[ProgressFn] = None,
                 cancel: Optional[CancelToken] = None,
                 on_epoch: Optional[Callable[[EpochResult], None]] = None,
                 on_step: Optional[Callable[[int, float], None]] = None,
                 on_sparsity: Optional[Callable[[int, float], None]] = None,
                 on_round: Optional[Callable[[RoundResult], None]] = None) -> ScheduleResult:
    """Prunes the session's live model following ``schedule`` and fine-tunes it as the schedule
    says (``finetune_spec`` gives the training settings: per round for iterative, in total for
    gradual and at_init, after pruning for oneshot)."""
    schedule.validate()
    prune_spec.validate()
    finetune_spec.validate()
    options = SCHEDULES.create(schedule.kind, schedule.options)
    if options.needs_training and finetune_spec.epochs < 1:
        raise PruneError(f"schedule '{schedule.kind}' trains while or after pruning: set "
                         f"fine-tuning epochs to at least 1")
    fixed = GRANULARITIES.get(prune_spec.granularity).fixed_sparsity
    if fixed and schedule.kind in ("iterative", "gradual"):
        raise PruneError(f"granularity '{prune_spec.granularity}' fixes the sparsity, so it cannot "
                         f"rise over a '{schedule.kind}' schedule; use oneshot or at_init")
    result = ScheduleResult(schedule.kind)
    cancel = cancel or CancelToken()
    offset = [0]   # optimizer steps done by earlier fine-tuning runs of this schedule

    def record(step: int) -> float:
        sparsity = selected_sparsity(session.model, prune_spec)
        result.sparsity_trace.append((step, sparsity))
        if on_sparsity is not None:
            on_sparsity(step, sparsity)
        return sparsity

    def train(spec: FinetuneSpec, after_step=None, best_from_step: int = 0) -> FinetuneResult:
        start = offset[0]
        step_cb = (lambda s, loss: on_step(start + s, loss)) if on_step is not None else None
        ft = session.finetune(spec, progress, cancel, on_epoch, step_cb, after_step, best_from_step)
        offset[0] = start + training_steps(session, dataclasses.replace(
            spec, epochs=len(ft.epochs))) if not ft.cancelled else start
        result.finetune.append(ft)
        if ft.cancelled:
            result.stopped = "stopped by the user"
        return ft

    def prune(spec: PruneSpec, round_no: int, target: float) -> RoundResult:
        result.outcome = session.prune(spec, progress, cancel)
        sparsity = record(offset[0])
        accuracy = _accuracy(session, cancel)
        rr = RoundResult(round_no, offset[0], target, sparsity, accuracy)
        result.rounds.append(rr)
        if on_round is not None:
            on_round(rr)
        return rr

    if schedule.kind == "oneshot":
        prune(prune_spec, 1, prune_spec.sparsity)
        if finetune_spec.epochs:
            train(finetune_spec)
            record(offset[0])
    elif schedule.kind == "at_init":
        if has_masks(session.model):
            raise PruneError("pruning at initialisation starts from fresh weights; revert the "
                             "pruned model first")
        count = reinitialise(session.model, session.seed)
        session.log(f"at_init: re-initialised {count} module(s) (seed {session.seed})")
        prune(prune_spec, 1, prune_spec.sparsity)
        train(finetune_spec)
        record(offset[0])
    elif schedule.kind == "iterative":
        _iterative(session, prune_spec, finetune_spec, options, result, prune, train, record,
                   offset, cancel)
    elif schedule.kind == "gradual":
        _gradual(session, prune_spec, finetune_spec, options, result, prune, train, record, offset)
    result.layer_sparsity = {t.name: 1.0 - count_nonzero(t.weight()) / t.weight().numel()
                             for t in select_targets(session.model, prune_spec.include,
                                                     prune_spec.exclude)}
    return result


def _accuracy(session: "Session", cancel: CancelToken) -> float:
    """Accuracy on the split decisions are made on (the accuracy floor stops rounds): validation,
    or test when nothing was held out."""
    data = session.data
    return evaluate(session.model, data.loader(data.selection_split,
                                               eval_batch_size(session.model, data)),
                    data.num_classes, cancel=cancel).accuracy


def _split_name(session: "Session") -> str:
    return "validation" if session.data.selection_split == "val" else "test"


def _iterative(session, spec, finetune_spec, options, result, prune, train, record, offset,
               cancel) -> None:
    """Each round: prune to the round's target, fine-tune, evaluate. The trace gets a point after
    each pruning step and after each round's fine-tuning, so it plots as a staircase."""
    floor = options["accuracy_floor"]
    rounds = options["rounds"]
    targets = [r / rounds for r in range(1, rounds + 1)]
    kept = copy.deepcopy(session.model)
    for r, fraction in enumerate(targets, 1):
        round_spec = scaled_spec(spec, lambda s, f=fraction: _scale(s, f, options["spacing"]))
        session.log(f"iterative round {r}/{len(targets)}: target {round_spec.sparsity:.1%}")
        rr = prune(round_spec, r, round_spec.sparsity)
        accuracy = rr.accuracy
        if finetune_spec.epochs:
            ft = train(finetune_spec)
            if ft.cancelled:
                return
            accuracy = _accuracy(session, cancel)
            result.rounds[-1] = dataclasses.replace(rr, accuracy=accuracy)
            record(offset[0])
        session.log(f"round {r}: sparsity {rr.sparsity:.1%}, {_split_name(session)} accuracy "
                    f"{accuracy:.2%}")
        if floor and accuracy < floor:
            session._replace_model(kept)
            result.stopped = (f"round {r} fell to {accuracy:.2%}, below the floor {floor:.2%}; "
                              + (f"kept round {r - 1}" if r > 1 else "kept the model from before "
                                 "pruning"))
            session.log(result.stopped)
            record(offset[0])
            return
        kept = copy.deepcopy(session.model)


def _scale(final: float, fraction: float, spacing: str) -> float:
    """Round r's target for a layer whose final sparsity is ``final`` (fraction = r/k), as
    :func:`engine.pruning.schedules.iterative_targets` spaces them."""
    if spacing == "linear":
        return final * fraction
    return 1.0 - (1.0 - final) ** fraction


def _gradual(session, spec, finetune_spec, options, result, prune, train, record, offset) -> None:
    total = training_steps(session, finetune_spec)
    initial = options["initial_sparsity"]
    plan = gradual_plan(total, 1.0, 0.0, options["every"], options["end_fraction"])
    events = dict(plan)   # step -> fraction of the way (cubic) from s_i to s_f
    end_step = plan[-1][0]

    def at(fraction: float) -> PruneSpec:
        return scaled_spec(spec, lambda s: min(s, initial) + (s - min(s, initial)) * fraction)

    # masks go in before training starts (at s_i, possibly all ones) so the model's state_dict
    # keys do not change mid-training and fine-tuning can keep and restore its best epoch
    prune(at(0.0), 0, at(0.0).sparsity)
    ctx = PruneContext(session.model, seed=spec.seed, data=session.data,
                       device=model_device(session.model), log=lambda _m: None)
    counter = [0]
    round_no = [0]

    def after_step(model: nn.Module) -> None:
        counter[0] += 1
        fraction = events.get(counter[0])
        if fraction is None:
            return
        ctx.model, ctx.device = model, model_device(model)
        step_spec = at(fraction)
        prune_model(model, step_spec, ctx)
        round_no[0] += 1
        sparsity = record(offset[0] + counter[0])
        result.rounds.append(RoundResult(round_no[0], offset[0] + counter[0], step_spec.sparsity,
                                         sparsity))

    session.log(f"gradual: {len(plan)} pruning steps every {options['every']} step(s), target "
                f"reached at step {end_step} of {total}")
    train(finetune_spec, after_step=after_step, best_from_step=end_step)
    record(offset[0])

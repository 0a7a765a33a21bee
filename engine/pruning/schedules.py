"""Pruning schedules: when and how often pruning happens. Pure functions that turn a schedule's
options into target sparsities, and a registry (``SCHEDULES``) the GUI builds its controls from.
:mod:`engine.scheduling` runs them on a session.

* ``oneshot``   prune once to the target, then fine-tune.
* ``iterative`` k rounds of prune → fine-tune → evaluate, each round's sparsity rising to the
  target; stops at an accuracy floor and keeps the last round above it.
* ``gradual``   Zhu & Gupta (2017): during fine-tuning, every Δt steps set the sparsity to
  s_t = s_f + (s_i − s_f)(1 − (t − t_0)/T)³, pruning fast while many redundant weights remain and
  slowly near the target, and reach the target at t_0 + T, before training ends, so the network
  recovers from the last pruning step.
* ``at_init``   re-initialise the weights, prune at initialisation with the chosen criterion (taylor
  at init is SNIP), then train the sparse network from scratch.
"""
from __future__ import annotations

import math
from typing import ClassVar

from engine.registry import Component, Option, Registry


class Schedule(Component):
    """A schedule's options; ``needs_training``: it means nothing without fine-tuning epochs."""
    needs_training: ClassVar[bool] = False


SCHEDULES: Registry[Schedule] = Registry("schedule")


def cubic_sparsity(step: int, final: float, initial: float = 0.0, begin: int = 0,
                   length: int = 1) -> float:
    """Zhu & Gupta's s_t = s_f + (s_i − s_f)(1 − (t − t_0)/T)³, held at s_i before t_0 and at s_f
    after t_0 + T."""
    if length <= 0:
        return final
    progress = min(1.0, max(0.0, (step - begin) / length))
    return final + (initial - final) * (1.0 - progress) ** 3


def gradual_plan(total_steps: int, final: float, initial: float = 0.0, every: int = 10,
                 end_fraction: float = 0.75, begin: int = 0) -> list[tuple[int, float]]:
    """The pruning events (step, sparsity) of the cubic schedule over ``total_steps`` training
    steps: every ``every`` steps from ``begin`` until ``end_fraction`` of training, the last event
    landing exactly on the final sparsity."""
    end = max(begin + 1, int(math.ceil(end_fraction * total_steps)))
    length = end - begin
    steps = list(range(begin + every, end, every)) + [end]
    return [(t, cubic_sparsity(t, final, initial, begin, length)) for t in steps]


def iterative_targets(final: float, rounds: int, spacing: str = "geometric") -> list[float]:
    """Each round's total sparsity. ``geometric`` removes the same fraction of the remaining weights
    every round (density (1−s_f)^(r/k)), so late rounds take small bites; ``linear`` adds s_f/k."""
    if spacing == "linear":
        return [final * r / rounds for r in range(1, rounds + 1)]
    return [1.0 - (1.0 - final) ** (r / rounds) for r in range(1, rounds + 1)]


@SCHEDULES.register
class OneShot(Schedule):
    name = "oneshot"
    label = "One-shot"
    description = ("Prune once to the target sparsity, then fine-tune (if fine-tuning epochs are "
                   "set). The fastest; large sparsities lose more accuracy than gradual schedules.")


@SCHEDULES.register
class Iterative(Schedule):
    name = "iterative"
    label = "Iterative (prune → fine-tune rounds)"
    description = ("k rounds of prune → fine-tune → evaluate, the sparsity rising each round until "
                   "the target. If a round's accuracy falls below the floor, stop and keep the last "
                   "round above it. Each round fine-tunes with the fine-tuning settings.")
    options = (
        Option("rounds", int, 3, "Number of prune → fine-tune rounds k.", minimum=1, maximum=100),
        Option("spacing", str, "geometric", "How sparsity rises: geometric (the same fraction of "
               "what is left each round) or linear.", choices=("geometric", "linear")),
        Option("accuracy_floor", float, 0.0, "Stop when a round's validation accuracy falls below this "
               "(0 = never stop early); the last round above it is kept.", minimum=0.0,
               maximum=1.0),
    )


@SCHEDULES.register
class Gradual(Schedule):
    name = "gradual"
    label = "Gradual (Zhu & Gupta cubic)"
    description = ("Prune during fine-tuning: every Δt steps the sparsity follows "
                   "s_t = s_f + (s_i − s_f)(1 − t/T)³, reaching the target at 'end_fraction' of "
                   "training so the rest of training recovers. Needs fine-tuning epochs.")
    needs_training = True
    options = (
        Option("initial_sparsity", float, 0.0, "s_i: sparsity at the start.", minimum=0.0,
               maximum=0.99),
        Option("every", int, 10, "Δt: training steps between pruning steps.", minimum=1),
        Option("end_fraction", float, 0.75, "Fraction of the training steps by which the target "
               "is reached (T).", minimum=0.01, maximum=1.0),
    )


@SCHEDULES.register
class AtInit(Schedule):
    name = "at_init"
    label = "At initialisation (train sparse from scratch)"
    description = ("Re-initialise the weights (seeded), prune at initialisation with the chosen "
                   "criterion (taylor at init is SNIP; l1 is magnitude at init), then train the "
                   "sparse network from scratch with the fine-tuning settings. Needs epochs.")
    needs_training = True

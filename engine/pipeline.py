"""Running a whole recipe headless: load -> measure -> prune -> measure -> fine-tune -> measure ->
export. The GUI runs the same steps one button at a time through the same :class:`Session`.

``prune.sensitivity`` first scans each layer's sensitivity and replaces the per-layer ratios by the
proposal that meets ``prune.sparsity``. A ``schedule`` other than one-shot runs through
:func:`engine.scheduling.run_schedule`, which fine-tunes as the schedule says; the "after pruning"
metrics are then those at the end of the schedule.

When ``recipe.structured.enabled`` the prune step removes channels (a smaller dense model) instead
of installing masks; the ``prune`` section (and so its sensitivity scan and schedule) is then not
used. Fine-tuning works the same on the smaller model."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from engine import distributed
from engine.config import Recipe
from engine.data.synthetic import NEEDS_LABELS
from engine.explain import Explanation
from engine.finetune import EpochResult, FinetuneResult
from engine.metrics import (NO_DATA, ModelMetrics, TableRow, comparison_table, layer_sparsity,
                            resolve_device)
from engine.progress import CancelToken, ProgressFn
from engine.pruning.sensitivity import SensitivityResult, propose_ratios
from engine.pruning.targets import GroupSparsity, group_sparsity
from engine.scheduling import ScheduleResult
from engine.session import Session
from engine.snapshots import weight_corner
from engine.structured.preflight import PreflightReport
from engine.structured.remove import StructuredOutcome
from engine.validation import check_recipe_for_model
from engine.verify import VerifyReport


@dataclass(frozen=True)
class WeightCorner:
    """A parameter's top-left block before and after the run (``metrics.show_corner``)."""
    name: str
    before: np.ndarray
    after: np.ndarray


@dataclass
class RecipeResult:
    original: ModelMetrics
    after_prune: Optional[ModelMetrics]   # None for a schedule: it prunes and trains in turns
    final: ModelMetrics
    table: list[TableRow]
    after_prune_table: Optional[list[TableRow]]
    finetune: Optional[FinetuneResult] = None
    exported: list[Path] = field(default_factory=list)
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    structured: Optional[StructuredOutcome] = None
    group: Optional[GroupSparsity] = None    # the pruned parameters taken together, at the end
    corner: Optional[WeightCorner] = None
    schedule: Optional[ScheduleResult] = None
    sensitivity: Optional[SensitivityResult] = None
    proposed_ratios: Optional[dict[str, float]] = None
    explanation: Optional[Explanation] = None   # "why is it (not) faster?", when asked for
    distributed: Optional[dict] = None   # under torchrun: the end-of-run agreement checks
    verification: Optional[VerifyReport] = None   # export.verify: each written file loaded afresh


def _check_before_loading(recipe: Recipe) -> None:
    """What can be known wrong before minutes of measuring and pruning is refused up front."""
    if recipe.finetune.epochs and recipe.finetune.device != "cpu":
        resolve_device(recipe.finetune.device)   # 'cuda' with no GPU here: a clear ValueError
    if recipe.prune.plugin and not Path(recipe.prune.plugin).expanduser().is_file():
        raise ValueError(f"prune.plugin: file not found: {recipe.prune.plugin}")


def _accuracy(metrics: ModelMetrics) -> str:
    return f"{metrics.accuracy:.2%}" if metrics.accuracy is not None else NO_DATA


def _check_no_data(recipe: Recipe) -> None:
    """No-data mode runs what needs no labels; a recipe asking for more is refused before loading."""
    if recipe.data.source != "none":
        return
    from engine.pruning.apply import criterion_needs_data
    wanted = [what for what, asked in (
        ("fine-tuning (finetune.epochs)", recipe.finetune.epochs > 0),
        ("a sensitivity scan (prune.sensitivity)",
         recipe.prune.sensitivity is not None and not recipe.structured.enabled),
        (f"the '{recipe.schedule.kind}' schedule", recipe.schedule.kind != "oneshot"
         and not recipe.structured.enabled),
        (f"criterion '{recipe.prune.method}'", not recipe.structured.enabled
         and criterion_needs_data(recipe.prune)),
        ("'taylor' importance", recipe.structured.enabled
         and recipe.structured.importance == "taylor")) if asked]
    if wanted:
        raise ValueError(f"data.source 'none' has no labels: {', '.join(wanted)} "
                         f"{NEEDS_LABELS.split(' (')[0]}")


def _check_after_loading(recipe: Recipe, session: Session) -> None:
    check_recipe_for_model(recipe, session.model)   # the window runs the same check
    if recipe.export.path and "shapes" in recipe.export.kinds and session.loaded.arch is None:
        raise ValueError("export.formats 'shapes' needs a model rebuilt by architecture name (the "
                         "demo, a torchvision model or a state_dict with its arch); this one is "
                         f"{session.loaded.description}: export TorchScript, ONNX or a state_dict")


def run_recipe(recipe: Recipe, progress: Optional[ProgressFn] = None,
               cancel: Optional[CancelToken] = None, log: Callable[[str], None] = lambda _m: None,
               on_epoch: Optional[Callable[[EpochResult], None]] = None,
               explain: bool = False) -> RecipeResult:
    """``explain`` adds a measured "why is it (not) faster?" (:mod:`engine.explain`)."""
    recipe.validate()
    _check_before_loading(recipe)
    _check_no_data(recipe)
    cancel = cancel or CancelToken()
    session = Session.open(recipe.model, recipe.data, recipe.metrics, recipe.seed, log)
    _check_after_loading(recipe, session)
    corner_name, corner_size = recipe.metrics.show_corner, recipe.metrics.corner_size
    corner_before = weight_corner(session.model, corner_name, corner_size) if corner_name else None
    original = session.measure_original(progress, cancel)
    log(f"original: accuracy {_accuracy(original)}")
    from dataclasses import replace
    prune_spec = recipe.prune
    sensitivity = proposed = None
    masks = not recipe.structured.enabled
    if masks and prune_spec.sensitivity is not None:
        sensitivity = session.sensitivity_scan(prune_spec, prune_spec.sensitivity.grid, progress,
                                               cancel, prune_spec.sensitivity.max_eval_batches)
        proposed = propose_ratios(sensitivity, prune_spec.sparsity)
        log("sensitivity proposal: " + ", ".join(f"{k} {v:.1%}" for k, v in proposed.items()))
        prune_spec = replace(prune_spec, per_layer=proposed, sensitivity=None)
    if masks and recipe.schedule.kind != "oneshot":
        schedule = session.run_schedule(replace(prune_spec, make_permanent=False), recipe.finetune,
                                        recipe.schedule, progress, cancel, on_epoch)
        if schedule.stopped:
            log(f"schedule {recipe.schedule.kind}: {schedule.stopped}")
        if recipe.prune.make_permanent:
            session.make_permanent()
        final = session.measure_current(progress, cancel)
        original = session.original_metrics  # latency re-timed beside the final model
        log(f"after the {recipe.schedule.kind} schedule: accuracy {_accuracy(final)}, sparsity "
            f"{schedule.sparsity_trace[-1][1]:.2%} of the selected weights")
        result = RecipeResult(original, None, final, comparison_table(original, final), None, None,
                              layer_sparsity=schedule.layer_sparsity, schedule=schedule,
                              sensitivity=sensitivity, proposed_ratios=proposed)
        _add_group_and_corner(result, session, prune_spec, corner_name, corner_size, corner_before)
        if explain:
            result.explanation = session.explain(progress=progress, cancel=cancel)
        _export(session, recipe, result, progress)
        return result
    finetune_needed = recipe.finetune.epochs > 0
    if finetune_needed and prune_spec.make_permanent:
        # masks must stay installed while fine-tuning so pruned weights stay zero
        prune_spec = replace(prune_spec, make_permanent=False)
    structured = None
    if recipe.structured.enabled:
        log("structured pruning: channels are removed; the 'prune' section is not used")
        session.preflight(recipe.structured, progress, cancel)
        structured = session.remove_channels(recipe.structured, progress, cancel)
        sparsity = layer_sparsity(session.model)
    else:
        sparsity = session.prune(prune_spec, progress, cancel).sparsity
    distributed.sync_pruned_model(session.model)   # no-op outside torchrun
    after_prune = session.measure_current(progress, cancel)
    # measure_current re-times the original beside the model it compares with: keep each pair
    original_beside_pruned = original = session.original_metrics
    log(f"after pruning: accuracy {_accuracy(after_prune)}")
    ft = agreement = None
    final = after_prune
    if finetune_needed:
        ft = session.finetune(recipe.finetune, progress, cancel, on_epoch=on_epoch)
        agreement = distributed.check_masks_fixed(session.model)   # before masks are folded
        if recipe.prune.make_permanent:
            session.make_permanent()
        final = session.measure_current(progress, cancel)
        original = session.original_metrics
        log(f"after fine-tuning: accuracy {_accuracy(final)}")
    result = RecipeResult(original, after_prune, final, comparison_table(original, final),
                          comparison_table(original_beside_pruned, after_prune), ft,
                          layer_sparsity=sparsity, structured=structured, sensitivity=sensitivity,
                          proposed_ratios=proposed, distributed=agreement)
    _add_group_and_corner(result, session, prune_spec, corner_name, corner_size, corner_before)
    if explain:
        result.explanation = session.explain(progress=progress, cancel=cancel)
    # under torchrun only rank 0 writes, and only once every rank has finished
    if distributed.all_finished() and distributed.writes_outputs():
        _export(session, recipe, result, progress)
    return result


def _export(session: Session, recipe: Recipe, result: RecipeResult, progress) -> None:
    if not recipe.export.path:
        return
    result.exported = session.export(recipe.export, recipe)
    if recipe.export.verify:
        result.verification = session.verify_export(result.exported, recipe.export.kinds, progress)


def run_preflight(recipe: Recipe, progress: Optional[ProgressFn] = None,
                  cancel: Optional[CancelToken] = None,
                  log: Callable[[str], None] = lambda _m: None) -> PreflightReport:
    """Only the pre-flight check of the recipe's channel removal (``--preflight``): loads the model
    and data, reports every dependency group, changes nothing."""
    recipe.validate()
    session = Session.open(recipe.model, recipe.data, recipe.metrics, recipe.seed, log)
    return session.preflight(recipe.structured, progress, cancel)


def _add_group_and_corner(result: RecipeResult, session: Session, prune_spec, corner_name,
                          corner_size: int, corner_before) -> None:
    """The pruned group's sparsity taken together (mask pruning only: structured removal changes
    shapes instead), and the shown corner after the run."""
    if result.structured is None:
        result.group = group_sparsity(session.model, prune_spec.include, prune_spec.exclude)
    if corner_name:
        result.corner = WeightCorner(corner_name, corner_before,
                                     weight_corner(session.model, corner_name, corner_size))

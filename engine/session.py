"""A pruning session: one model, its data, the untouched original, and every step applied to it.

This is the engine's facade. The GUI worker and the headless CLI both drive a :class:`Session`, so
they share one implementation of load -> measure -> prune -> fine-tune -> compare -> export.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import torch
from torch import nn

from engine.config import (DataSpec, ExportSpec, FinetuneSpec, MetricsSpec, ModelSpec, PruneSpec,
                           Recipe, ScheduleSpec, StructuredSpec)
from engine.data.sources import DataBundle, DataError, load_data
from engine.finite import describe_nonfinite, nonfinite_count, nonfinite_tensors
from engine.finetune import EpochResult, FinetuneResult, finetune
from engine.history import History, Step
from engine.kept import KeptModel
from engine.messages import one_line
from engine.metrics import (ModelMetrics, TableRow, comparison_table, count_macs, count_parameters,
                            eval_batch_size, evaluate, forward_batch, is_image_batch,
                            layer_sparsity, measure_latencies, measure_latencies_fastest_layout,
                            model_device, resolve_device, storage_bytes, summarize_comparison,
                            to_device)
from engine.models.fit import PairMismatch
from engine.models.sources import LoadedModel, load_model
from engine.outputs import (RunFile, check_outputs, data_inputs, export_outputs, model_inputs,
                            model_source)
from engine.progress import CancelToken, Progress, ProgressFn, stoppable
from engine.pruning.apply import PruneOutcome, has_masks, make_permanent, prune_model
from engine.pruning.base import PruneContext
from engine.snapshots import WeightSnapshot, histogram_ranges, take_snapshot
from engine.structured.exporters import export_all
from engine.transaction import model_transaction
from engine.structured.remove import StructuredOutcome, in_original_numbering, prune_channels
from engine.structured.semistructured import (SemiStructuredAvailability, SemiStructuredReport,
                                              convert_semi_structured, semi_structured_availability)
from engine.structured.shapes import LayerWidth, layer_widths

if TYPE_CHECKING:
    from engine.explain import Explanation
    from engine.structured.preflight import PreflightReport
    from engine.pruning.sensitivity import SensitivityResult
    from engine.scheduling import RoundResult, ScheduleResult
    from engine.runstore import RunStore
    from engine.verify import VerifyReport


@dataclass
class RunRecord:
    """One finished run, as a row of the run history."""
    label: str
    recipe: dict
    metrics: ModelMetrics
    table: list[TableRow]
    summary: list[str] = field(default_factory=list)


@dataclass
class Session:
    loaded: LoadedModel
    data: DataBundle
    metrics_spec: MetricsSpec = field(default_factory=MetricsSpec)
    seed: int = 0
    log: Callable[[str], None] = lambda _msg: None
    # the files the model and data were read from, which no export may write over (engine.outputs)
    inputs: list[RunFile] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model: nn.Module = self.loaded.model
        self._original = KeptModel(self.model)   # in a file at full size (engine.kept)
        self.original_metrics: Optional[ModelMetrics] = None
        self.current_metrics: Optional[ModelMetrics] = None
        self.original_snapshot = take_snapshot(self.model, "original")   # the same weights, now
        self.history: list[RunRecord] = []
        self.steps = History()   # undo: each operation's result, on disk, newest last
        self.structured: Optional[StructuredOutcome] = None   # the last channel removal
        self.nonfinite = nonfinite_tensors(self.model)   # NaN/inf tensors at opening (engine.finite)
        # counts changes to the live model; a Stop or failure puts it back with the model, so a
        # view can tell "exactly as before" without comparing weights (engine.transaction)
        self.model_version = 0

    @property
    def original(self) -> nn.Module:
        """The model as opened, in eval mode (Revert, the Compare table's original column). At
        full size each use maps it from its file: hold it while using it, not longer."""
        return self._original.model().eval()

    # ------------------------------------------------------------ loading

    @classmethod
    def open(cls, model_spec: ModelSpec, data_spec: DataSpec, metrics: Optional[MetricsSpec] = None,
             seed: int = 0, log: Callable[[str], None] = lambda _m: None) -> "Session":
        loaded = load_model(model_spec, seed)
        if data_spec.source == "none":   # no-data mode: synthetic inputs shaped for this model
            from engine.data.synthetic import synthetic_data
            data_spec.validate()
            data = synthetic_data(data_spec, loaded.model, loaded)
        else:
            try:
                _check_text_pairing(loaded, data_spec)
            except ValueError as exc:
                raise PairMismatch.between(str(exc), "text", loaded, model_spec) from None
            data = load_data(data_spec, vocab=loaded.vocab, tokenizer=loaded.tokenizer)
            check_data(data)   # a data problem is reported as one, not blamed on the model
            try:
                check_pair(loaded.model, data)
            except PairMismatch as exc:   # say what would fit, so the window can ask for it
                raise exc.with_fit(loaded, model_spec) from None
        if data_spec.vectors_path:
            from engine.text.vectors import fill_embedding
            embedding = getattr(loaded.model, "embedding", None)
            vocab = getattr(data, "vocab", None)
            if not isinstance(embedding, nn.Embedding) or vocab is None:
                raise ValueError("data.vectors_path needs a model with an 'embedding' layer and "
                                 "text data with a vocabulary (a BiLSTM on text_csv/text_tsv)")
            log(str(fill_embedding(embedding, vocab, data_spec.vectors_path)))
        session = cls(loaded, data, metrics or MetricsSpec(), seed, log,
                      model_inputs(model_spec) + data_inputs(data_spec))
        if session.nonfinite:
            log(f"warning: the model has non-finite weights: {describe_nonfinite(session.nonfinite)}"
                f". It opens for inspection; its outputs may be NaN. Pruning keeps NaN weights.")
        log(f"loaded {loaded.description}; data: {data.description} "
            f"({len(data.train)} train / "
            + (f"{len(data.val)} validation / " if data.val is not None else "")
            + f"{len(data.test)} test)")
        return session

    def check_compatible(self) -> None:
        """Runs one sample through the model so a model/data mismatch is reported at load time in
        plain words, not as a shape error in the middle of a run; a data problem first, as such."""
        if self.data.has_labels:
            check_data(self.data)
        check_pair(self.model, self.data)

    # ------------------------------------------------------------ measuring

    @stoppable
    def measure(self, model: Optional[nn.Module] = None, progress: Optional[ProgressFn] = None,
                cancel: Optional[CancelToken] = None, latency: Optional[bool] = None,
                on_figures: Optional[Callable[[ModelMetrics], None]] = None) -> ModelMetrics:
        """Measures the cheap figures first (parameters, size, MACs), then accuracy, then latency;
        ``on_figures`` gets a copy of the metrics after each step, so a table can fill in."""
        model = model if model is not None else self.model
        spec = self.metrics_spec
        report = on_figures or (lambda _m: None)
        params, nonzero = count_parameters(model)
        dense, sparse = storage_bytes(model)
        m = ModelMetrics(input_note=self.data.input_note, params=params, nonzero_params=nonzero,
                         dense_bytes=dense, sparse_bytes=sparse,
                         latency_batch=spec.latency_batch_size,
                         layer_sparsity=layer_sparsity(model), labelled=self.data.has_labels,
                         nonfinite=nonfinite_count(model))
        report(dataclasses.replace(m))
        if cancel is not None:
            cancel.raise_if_cancelled()
        if progress is not None:
            progress(Progress("Counting MACs", 0, 0))
        m.macs, m.effective_macs = count_macs(model, self.data.example_input(1))
        report(dataclasses.replace(m))
        if cancel is not None:
            cancel.raise_if_cancelled()
        if self.data.has_labels:
            loader = self.data.loader("test", eval_batch_size(model, self.data))
            result = evaluate(model, loader, self.data.num_classes, progress, cancel)
            m.accuracy, m.loss, m.f1 = result.accuracy, result.loss, result.f1
            m.precision, m.recall = result.precision, result.recall
            report(dataclasses.replace(m))
        if latency if latency is not None else spec.measure_latency:
            self._measure_latency([m], [model], progress, cancel)
        return m

    def _measure_latency(self, metrics: list[ModelMetrics], models: list[nn.Module],
                         progress: Optional[ProgressFn], cancel: Optional[CancelToken]) -> None:
        """Fills the latency fields of each metrics object, timing the models interleaved."""
        spec = self.metrics_spec
        if progress is not None:
            progress(Progress("Measuring latency", 0, 0))
        example = self.data.example_input(spec.latency_batch_size)
        device = model_device(models[-1])
        layout = "channels_last" if spec.channels_last and is_image_batch(example) else ""
        if not spec.channels_last and spec.latency_layout == "fastest" and is_image_batch(example):
            for m, (ms, throughput, faster) in zip(metrics, measure_latencies_fastest_layout(
                    models, example, spec.latency_runs, spec.latency_warmup, device, cancel)):
                m.latency_ms, m.throughput, m.device = ms, throughput, device.type
                m.latency_batch, m.memory_format, m.layout_chosen = \
                    spec.latency_batch_size, faster, True
        else:
            for m, (ms, throughput) in zip(metrics, measure_latencies(
                    models, example, spec.latency_runs, spec.latency_warmup, device, cancel,
                    channels_last=bool(layout))):
                m.latency_ms, m.throughput, m.device = ms, throughput, device.type
                m.latency_batch, m.memory_format = spec.latency_batch_size, layout
        if device.type == "cpu" and torch.cuda.is_available():
            for m, (ms, _) in zip(metrics, measure_latencies(
                    models, example, spec.latency_runs, spec.latency_warmup,
                    torch.device("cuda"), cancel, channels_last=bool(layout))):
                m.latency_gpu_ms = ms

    def explain(self, batches: Optional[tuple[int, ...]] = None,
                progress: Optional[ProgressFn] = None,
                cancel: Optional[CancelToken] = None) -> "Explanation":
        """Why the current model is or is not faster than the original, measured: a latency sweep
        over batch sizes and layouts, the storage format, sparse kernels here, and a verdict."""
        from engine.explain import SWEEP_BATCHES, explain
        spec = self.metrics_spec
        explanation = explain(self.original, self.model, self.data.example_input,
                              batches or SWEEP_BATCHES, runs=max(3, min(spec.latency_runs, 20)),
                              warmup=min(spec.latency_warmup, 3), device=model_device(self.model),
                              progress=progress, cancel=cancel)
        for line in explanation.verdict:
            self.log(line)
        return explanation

    def measure_original(self, progress=None, cancel=None) -> ModelMetrics:
        if self.original_metrics is None:
            self.original_metrics = self.measure(self.original, progress, cancel)
        return self.original_metrics

    @stoppable
    def measure_current(self, progress=None, cancel=None,
                        on_figures: Optional[Callable[[ModelMetrics, ModelMetrics], None]] = None
                        ) -> ModelMetrics:
        """Measures the current model; its latency is timed interleaved with the original's, and the
        original's latency is updated from the same run, so the ratio compares like with like.
        ``on_figures(original, current)`` gets the current model's figures as they are measured."""
        original = self.measure_original(progress, cancel)
        current = self.measure(self.model, progress, cancel, latency=False,
                               on_figures=(lambda m: on_figures(original, m)) if on_figures else None)
        if self.metrics_spec.measure_latency:
            original = dataclasses.replace(original)
            self._measure_latency([original, current], [self.original, self.model], progress, cancel)
            self.original_metrics = original
        self.current_metrics = current
        return current

    def comparison(self) -> list[TableRow]:
        if self.original_metrics is None or self.current_metrics is None:
            raise ValueError("measure the original and the current model first")
        return comparison_table(self.original_metrics, self.current_metrics)

    def record_run(self, label: str, recipe: Optional[dict] = None) -> RunRecord:
        """Adds the current measurement as one row of the run history (the GUI's Compare tab)."""
        table = self.comparison()
        summary = summarize_comparison(self.original_metrics, self.current_metrics)
        if self.structured is not None and self.structured.kept_whole:
            summary.append(f"Kept whole, because removing their channels broke the model: "
                           f"{', '.join(self.structured.kept_whole)} (the log says why).")
        record = RunRecord(label, dict(recipe or {}), self.current_metrics, table, summary)
        self.history.append(record)
        return record

    def record_model(self, label: str, model: nn.Module, recipe: Optional[dict] = None,
                     progress: Optional[ProgressFn] = None,
                     cancel: Optional[CancelToken] = None) -> RunRecord:
        """Measures another model of this session's architecture (a checkpoint fine-tuned
        elsewhere) beside the original and adds it to the run history; the live model stays."""
        original = dataclasses.replace(self.measure_original(progress, cancel))
        metrics = self.measure(model, progress, cancel, latency=False)
        if self.metrics_spec.measure_latency:
            self._measure_latency([original, metrics], [self.original, model], progress, cancel)
        record = RunRecord(label, dict(recipe or {}), metrics, comparison_table(original, metrics),
                           summarize_comparison(original, metrics))
        self.history.append(record)
        return record

    # ------------------------------------------------------------ changing the model

    @stoppable
    def prune(self, spec: PruneSpec, progress: Optional[ProgressFn] = None,
              cancel: Optional[CancelToken] = None) -> PruneOutcome:
        """Prunes the live model. On any failure the model is restored to its state before the call,
        so an error never leaves half the layers masked."""
        with model_transaction(self):
            ctx = PruneContext(self.model, seed=spec.seed, data=self.labelled_data,
                               device=model_device(self.model), progress=progress, cancel=cancel,
                               log=self.log)
            outcome = prune_model(self.model, spec, ctx)
            self.model_version += 1
        self.current_metrics = None
        return outcome

    @stoppable
    def remove_channels(self, spec: StructuredSpec, progress: Optional[ProgressFn] = None,
                        cancel: Optional[CancelToken] = None) -> StructuredOutcome:
        """Structured pruning: replaces the live model by a smaller one with channels removed.
        The work happens on a copy, so a failure or Stop leaves the model as it was. Fine-tuning,
        measuring and exporting then work on the smaller model as on any other; ``revert`` brings
        back the original."""
        with model_transaction(self, copy_model=False):   # prune_channels works on a copy
            outcome = prune_channels(self.model, self.data.example_input(1), spec, progress, cancel,
                                     data=self.labelled_data, log=self.log)
            self._replace_model(outcome.model)
            if self.structured is not None:   # a second removal: keep the original numbering
                outcome.removed_channels = in_original_numbering(self.structured, outcome)
            self.structured = outcome
        self.current_metrics = None
        self.log(outcome.summary)
        return outcome

    @stoppable
    def preflight(self, spec: StructuredSpec, progress: Optional[ProgressFn] = None,
                  cancel: Optional[CancelToken] = None) -> "PreflightReport":
        """Which channel groups of the live model can be removed and which must stay whole, and
        why; checked on a copy (see :mod:`engine.structured.preflight`)."""
        from engine.structured.preflight import preflight
        report = preflight(self.model, self.data.example_input(1), spec, progress, cancel)
        self.log(report.summary)
        return report

    def layer_widths(self) -> list[LayerWidth]:
        """Every conv/linear/norm layer's width in the original and in the current model."""
        return layer_widths(self.original, self.model)

    @staticmethod
    def semi_structured_availability() -> SemiStructuredAvailability:
        return semi_structured_availability()

    @stoppable
    def semi_structured(self, apply_mask: bool = False, batch_size: int = 64,
                        progress: Optional[ProgressFn] = None,
                        cancel: Optional[CancelToken] = None) -> SemiStructuredReport:
        """Converts the current model's 2:4 Linear weights to semi-structured sparse tensors on the
        GPU (a copy; the session's model is unchanged), checks its outputs and times it. Raises
        SemiStructuredUnavailable with the reason where the hardware cannot."""
        _, report = convert_semi_structured(self.model, self.data.example_input(batch_size),
                                            apply_mask, runs=self.metrics_spec.latency_runs,
                                            warmup=self.metrics_spec.latency_warmup,
                                            progress=progress, cancel=cancel)
        self.log(f"2:4 sparsity: {report.converted} Linear layer(s) converted, outputs "
                 f"{'match' if report.outputs_match else 'DIFFER'} (max |diff| {report.max_abs_diff:.2e}), "
                 f"speedup {report.speedup:.2f}x at batch {report.batch_size}")
        return report

    @stoppable
    def finetune(self, spec: FinetuneSpec, progress: Optional[ProgressFn] = None,
                 cancel: Optional[CancelToken] = None,
                 on_epoch: Optional[Callable[[EpochResult], None]] = None,
                 on_step: Optional[Callable[[int, float], None]] = None,
                 after_step: Optional[Callable[[nn.Module], None]] = None,
                 best_from_step: int = 0) -> FinetuneResult:
        self.require_labels("fine-tuning")
        device = resolve_device(spec.device)
        with model_transaction(self) as restore_point:
            self.model.to(device)
            try:
                result = finetune(self.model, self.data, spec, self.seed, progress, cancel,
                                  on_epoch, on_step, after_step, best_from_step, restore_point)
            finally:
                self.model.to("cpu")
            if not result.cancelled or result.best_epoch is not None:
                self.model_version += 1   # a Stop before the first epoch loaded the weights back
        self.current_metrics = None
        for e in result.epochs:
            self.log(f"epoch {e.epoch}: train loss {e.train_loss:.4f}, "
                     + (f"validation accuracy {e.val.accuracy:.2%}, " if e.val else "")
                     + f"test accuracy {e.test.accuracy:.2%}")
        if result.best_epoch is not None and not result.cancelled:
            self.log(f"kept epoch {result.best_epoch} "
                     + ("(best validation accuracy)" if self.data.val is not None
                        else "(the last: data.val_fraction is 0, nothing held out to choose on)"))
        if result.cancelled:
            self.log("fine-tuning stopped; kept "
                     + (f"the best epoch ({result.best_epoch})" if result.best_epoch
                        else "the weights from before fine-tuning"))
        return result

    @stoppable
    def run_schedule(self, prune_spec: PruneSpec, finetune_spec: FinetuneSpec,
                     schedule: ScheduleSpec, progress: Optional[ProgressFn] = None,
                     cancel: Optional[CancelToken] = None,
                     on_epoch: Optional[Callable[[EpochResult], None]] = None,
                     on_step: Optional[Callable[[int, float], None]] = None,
                     on_sparsity: Optional[Callable[[int, float], None]] = None,
                     on_round: Optional[Callable[["RoundResult"], None]] = None) -> "ScheduleResult":
        """Prunes (and fine-tunes) the live model following ``schedule``; see
        :func:`engine.scheduling.run_schedule`."""
        from engine.scheduling import run_schedule
        if schedule.kind != "oneshot" or finetune_spec.epochs:
            self.require_labels(f"the {schedule.kind} schedule")
        with model_transaction(self):   # its prune and fine-tune steps share this restore point
            return run_schedule(self, prune_spec, finetune_spec, schedule, progress, cancel,
                                on_epoch, on_step, on_sparsity, on_round)

    @stoppable
    def sensitivity_scan(self, spec: PruneSpec, grid, progress: Optional[ProgressFn] = None,
                         cancel: Optional[CancelToken] = None,
                         max_eval_batches: Optional[int] = None) -> "SensitivityResult":
        """Prunes each selected layer alone over ``grid`` on a copy of the live model (which is left
        untouched) and measures test accuracy; see :mod:`engine.pruning.sensitivity`."""
        from engine.pruning.sensitivity import scan
        self.require_labels("the sensitivity scan")
        with model_transaction(self, copy_model=False):   # the scan prunes a copy
            return scan(self.model, self.data, spec, grid, progress, cancel, max_eval_batches,
                        self.log)

    @property
    def labelled_data(self) -> Optional[DataBundle]:
        """The data for steps that need labels or real samples; None in no-data mode, which those
        steps (gradient criteria, Taylor importance, slimming) refuse with their own message."""
        return self.data if self.data.has_labels else None

    def require_labels(self, what: str) -> None:
        if not self.data.has_labels:
            from engine.data.synthetic import NEEDS_LABELS
            raise ValueError(f"{what} {NEEDS_LABELS}")

    def make_permanent(self) -> int:
        with model_transaction(self):
            n = make_permanent(self.model)
            self.model_version += 1
        self.log(f"made {n} mask(s) permanent")
        return n

    def revert(self) -> None:
        self._replace_model(copy.deepcopy(self.original))
        self.current_metrics = None
        self.structured = None
        self.steps.clear()
        self.log("reverted to the original weights")

    # ------------------------------------------------------------ history and stored runs

    def record_step(self, label: str, op: str) -> Step:
        """Marks the current model as one step of the undo history (after an operation)."""
        return self.steps.push(self.model, label, op)

    def back(self) -> Optional[Step]:
        """Goes back one step: the model as it was before the newest operation (None: the
        original). Built from the original in memory, not re-loaded from disk."""
        model, step = self.steps.back(self.original)
        self._replace_model(model)
        self.current_metrics = None
        widths = {w.name: w.out_after for w in self.layer_widths()}
        if self.structured is not None and widths != {w.name: w.out_after
                                                      for w in self.structured.layers}:
            self.structured = None   # not the model the last removal made (nor one fine-tuned from it)
        self.log(f"back to {step.label if step else 'the original'}")
        return step

    def identity(self) -> str:
        """The original model's identity in a run store (a digest of its tensors)."""
        if getattr(self, "_identity", None) is None:
            from engine.runstore import model_identity
            self._identity = model_identity(self.original)
        return self._identity

    def save_run(self, store: "RunStore", record: RunRecord,
                 cancel: Optional[CancelToken] = None) -> int:
        """Keeps ``record`` and the current model in ``store`` (survives restarts)."""
        path = str(self.loaded.source_path) if self.loaded.source_path is not None else None
        widths = {w.name: [w.out_before, w.out_after] for w in self.layer_widths() if w.changed}
        return store.add(record.label, self.model, recipe=record.recipe,
                         metrics=dataclasses.asdict(record.metrics),
                         layer_sparsity=record.metrics.layer_sparsity, layer_widths=widths,
                         model_description=self.loaded.description,
                         source=(path, self.identity()), cancel=cancel)

    def restore_run(self, store: "RunStore", run_id: int) -> None:
        """Replaces the model by a stored run's (bit-identical); it is one more undo step."""
        run = store.get(run_id)
        if run.source_sha256 != self.identity():
            raise ValueError(f"run {run_id} ({run.label}) was made from another model "
                             f"({run.model_description})")
        self._replace_model(store.restore(run_id, self.original))
        self.current_metrics = None
        self.structured = None
        self.record_step(f"restored: {run.label}", "restore")
        self.log(f"restored run {run_id}: {run.label}")

    def _replace_model(self, model: nn.Module) -> None:
        self.model = model
        self.model_version += 1
        self.loaded = dataclasses.replace(self.loaded, model=model)

    def _text_sidecar_writer(self, path: Path) -> Callable[[], list[Path]]:
        """A BiLSTM export gets its hyper-parameters and vocabulary beside it (``model.json``), so it
        opens again as ``state_dict`` + ``bilstm`` with the same token ids. Checked before anything
        is written: the source model's own JSON is never overwritten."""
        from engine.text.bilstm import BiLSTMClassifier, sidecar_for, sidecar_path
        vocab = getattr(self.data, "vocab", None) or self.loaded.vocab
        if not isinstance(self.model, BiLSTMClassifier) or vocab is None:
            return lambda: []
        target = sidecar_path(path)
        if self.loaded.source_path is not None and target.expanduser().resolve() == \
                sidecar_path(self.loaded.source_path).resolve():
            raise ValueError(f"exporting to {path.name} would overwrite the source model's "
                             f"{target.name}; choose another name")

        def write() -> list[Path]:
            import json
            from engine.io import atomic_write_text
            names = self.data.class_names or self.loaded.class_names or []
            sidecar = sidecar_for(self.model, vocab, names, pruned_from=self.loaded.description)
            atomic_write_text(target, json.dumps(sidecar, indent=1) + "\n")
            return [target]
        return write

    @property
    def is_pruned(self) -> bool:
        return has_masks(self.model) or any(
            s > 0 for s in layer_sparsity(self.model).values()) or any(
            w.changed for w in self.layer_widths())

    # ------------------------------------------------------------ views and export

    def snapshot(self, label: str = "current", histograms: bool = True,
                 cancel: Optional[CancelToken] = None) -> WeightSnapshot:
        return take_snapshot(self.model, label, histograms=histograms,
                             ranges=histogram_ranges(self.original_snapshot), cancel=cancel)

    def check_export(self, spec: ExportSpec) -> None:
        """Refuses, before anything is written, an export that would overwrite what the session
        read or could not be written (see engine.outputs)."""
        from engine.text.bilstm import BiLSTMClassifier
        sources = [model_source(p, folder=p.is_dir()) for p in self.loaded.source_files]
        check_outputs(export_outputs(spec, text_sidecar=isinstance(self.model, BiLSTMClassifier)),
                      sources + self.inputs)

    def export(self, spec: ExportSpec, recipe: Optional[Recipe] = None) -> list[Path]:
        if not spec.path:
            raise ValueError("no export path given")
        self.check_export(spec)
        report = None
        if spec.report:
            report = {"recipe": recipe.to_dict() if recipe else None,
                      "model": self.loaded.description, "data": self.data.description,
                      "original": self.original_metrics, "pruned": self.current_metrics,
                      "comparison": self.comparison() if self.original_metrics and self.current_metrics
                      else None}
            if self.structured is not None:
                report["structured"] = self.structured.as_dict()
                report["layer_widths"] = [w for w in self.layer_widths() if w.changed]
        write_sidecar = self._text_sidecar_writer(Path(spec.path))
        paths = export_all(self.model, spec.path, spec.kinds, self.data.example_input(1),
                           arch=self.loaded.arch, num_classes=self.data.num_classes,
                           input_shape=tuple(self.data.input_shape), include_masks=spec.include_masks,
                           report=report,
                           protected=self.loaded.source_files, dtype=self.loaded.dtype)
        if self.loaded.dtype is not None:
            self.log(f"the state_dict is written in {str(self.loaded.dtype).split('.')[-1]}, the "
                     f"checkpoint's own dtype (computed in float32 here)")
        paths += write_sidecar()
        self.log("exported " + ", ".join(str(p) for p in paths))
        return paths

    def verify_export(self, written: list[Path], kinds: list[str],
                      progress: Optional[ProgressFn] = None) -> "VerifyReport":
        """Loads each exported file in a fresh process and compares its outputs with the live
        model's on the same inputs (:func:`engine.verify.verify_export`)."""
        from engine.verify import verify_export
        channel_pruned = any(w.changed for w in self.layer_widths())
        report = verify_export(self.model, [Path(p) for p in written], kinds,
                               self.data.example_input(2), self.loaded.arch, self.data.num_classes,
                               channel_pruned, progress=progress)
        for line in report.lines():
            self.log("verify: " + line)
        return report


def check_data(data: DataBundle) -> None:
    """Refuses data that cannot be measured: an empty test split, or an example that cannot be
    read (the message names the file)."""
    if len(data.test) == 0:
        raise DataError(f"the test split of {data.description} is empty, so nothing can be "
                        f"measured: add samples, or give a separate test (or val) folder")
    try:
        data.example_input(1)
    except Exception as exc:   # a data problem, not the model's: say so and name the file
        raise DataError(f"the data cannot be read ({data.description}): "
                        f"{one_line(exc, 200)}") from None


def check_pair(model: nn.Module, data: DataBundle) -> None:
    """Runs one sample through the model so a model/data mismatch is reported at load time in
    plain words (a PairMismatch), not as a shape error in the middle of a run."""
    try:
        with torch.no_grad():
            out = forward_batch(model, to_device(data.example_input(1), model_device(model)))
    except Exception as exc:
        raise PairMismatch(f"the model cannot take this data's input of shape "
                           f"{tuple(data.input_shape)}: {str(exc).splitlines()[0]}", "input",
                           data_classes=data.num_classes,
                           data_shape=tuple(data.input_shape)) from None
    if out.dim() != 2 or out.shape[1] != data.num_classes:
        raise PairMismatch(f"the model outputs {tuple(out.shape[1:])} scores per sample but the "
                           f"data has {data.num_classes} classes", "classes",
                           data_classes=data.num_classes, data_shape=tuple(data.input_shape))


def _check_text_pairing(loaded: LoadedModel, data_spec: DataSpec) -> None:
    """A Hugging Face model reads its own tokenizer's ids, a BiLSTM its vocabulary's; mixing them
    would run without error and mean nothing, so it is refused up front."""
    from engine.config import TEXT_DATA_SOURCES
    from engine.text.bilstm import BiLSTMClassifier
    is_text_model = (loaded.tokenizer is not None or loaded.vocab is not None
                     or isinstance(loaded.model, BiLSTMClassifier))
    if is_text_model and data_spec.source not in TEXT_DATA_SOURCES:
        raise ValueError(f"{loaded.description} is a text model: open text data "
                         f"({', '.join(TEXT_DATA_SOURCES)}), not '{data_spec.source}'")
    if loaded.tokenizer is not None and data_spec.source in TEXT_DATA_SOURCES \
            and data_spec.source != "hf_tsv":
        raise ValueError(f"a Hugging Face model reads text through its own tokenizer: use "
                         f"data.source 'hf_tsv', not '{data_spec.source}'")
    if loaded.vocab is not None and data_spec.source == "hf_tsv":
        raise ValueError("data.source 'hf_tsv' is for Hugging Face models; this model has its own "
                         "vocabulary: use 'text_csv' or 'text_tsv'")

"""The one engine worker: a QObject living in its own QThread that owns the live Session.

The GUI sends a :class:`Request` through a queued signal; the worker runs it on its thread and
answers with signals that carry plain data only (numpy arrays and dataclasses, never live tensors),
so the GUI thread never touches the model while training mutates it. Stop is a
:class:`~engine.progress.CancelToken` created with the request: the GUI cancels it directly (it is
thread-safe) and the engine honours it between batches. Chart snapshots during fine-tuning are
throttled so a fast model does not flood the GUI with repaints.
"""
from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
from PySide6.QtCore import QObject, Signal, Slot

from engine.config import (DataSpec, ExportSpec, FinetuneSpec, MetricsSpec, ModelSpec, PruneSpec,
                           ScheduleSpec, StructuredSpec)
from engine.finetune import EpochResult
from engine.memory import release_free_memory
from engine.messages import one_line
from engine.metrics import NO_DATA, ModelMetrics, TableRow, comparison_table, format_table
from engine.models.fit import DataFit, PairMismatch
from engine.model_info import ModelInfo, describe_model
from engine.progress import Cancelled, CancelToken, Progress, check_stop, stop_inside_passes
from engine.session import RunRecord, Session
from engine.pruning.targets import group_sparsity
from engine.snapshots import WeightSnapshot, weight_corner, weight_matrix
from gui.heap import HEAVY_IMPORTS, import_quietly, imports_for
from gui.worker_history import WorkerHistory
from gui.worker_stop import WorkerStop


@dataclass
class Request:
    """One operation for the worker. ``op`` names a ``_do_<op>`` method; ``token`` stops it."""
    op: str
    args: dict[str, Any] = field(default_factory=dict)
    token: CancelToken = field(default_factory=CancelToken)


@dataclass(frozen=True)
class SessionInfo:
    """What the window shows right after a model and its data are opened."""
    model: ModelInfo
    data_description: str
    original_snapshot: WeightSnapshot
    model_spec: Optional[ModelSpec]
    data_spec: Optional[DataSpec]
    has_labels: bool = True     # False in no-data mode: what needs labels is greyed out


@dataclass(frozen=True)
class PairInfo:
    """A model and data that do not go together (engine.models.fit.PairMismatch) as plain data:
    what would fit the model (``fit``) and what the data is, so the window asks for the other half."""
    message: str
    kind: str
    fit: Optional[DataFit]
    data_classes: Optional[int]
    data_shape: Optional[tuple[int, ...]]
    model_spec: ModelSpec
    data_spec: DataSpec


@dataclass(frozen=True)
class MatrixData:
    """One parameter as a 2-D picture for the mask view (see engine.snapshots.weight_matrix)."""
    name: str
    what: str                   # weight, abs or mask
    shape: tuple[int, ...]      # the parameter's own shape, to turn a pixel back into an index
    image: np.ndarray
    # the 5x5 top-left corner in the original and the current model (engine.snapshots.weight_corner)
    corner_before: Optional[np.ndarray] = None
    corner_after: Optional[np.ndarray] = None
    original_shape: Optional[tuple[int, ...]] = None   # differs after channel removal


@dataclass(frozen=True)
class MetricsReport:
    original: ModelMetrics
    current: ModelMetrics
    table: list[TableRow]
    summary: list[str]
    record: RunRecord


@dataclass(frozen=True)
class StepLosses:
    steps: list[int]
    losses: list[float]


@dataclass(frozen=True)
class SparsityPoints:
    """Sparsity of the selected weights against the training step, while a schedule runs."""
    steps: list[int]
    sparsities: list[float]


# From this many parameters up, training and pruning run on every core (see every_core)
EVERY_CORE_PARAMETERS = 2_000_000


@contextmanager
def every_core(model: Optional[torch.nn.Module] = None) -> Iterator[None]:
    """Training a big model on every core. The window otherwise leaves the GUI thread a core
    (see MainWindow._start_worker), which halved ResNet-50's fine-tuning speed on 2 cores; its
    ops take milliseconds to seconds, and the GUI thread taking a turn now and then costs them
    little. A small model (fewer than EVERY_CORE_PARAMETERS parameters, ``model`` given) keeps
    the window's count: its ops are microseconds long, a second thread gains nothing, and
    threads waiting on each other for the GUI thread's turns stalled the window 200 ms."""
    before = torch.get_num_threads()
    small = model is not None and sum(p.numel() for p in model.parameters()) < EVERY_CORE_PARAMETERS
    torch.set_num_threads(before if small else max(before, os.cpu_count() or before))
    try:
        yield
    finally:
        torch.set_num_threads(before)


# How far below the window's the engine thread's CPU priority is, in Linux nice levels.
ENGINE_NICE = 10


def lower_engine_thread_priority() -> bool:
    """Runs the calling thread (the engine's QThread, as it starts) at ``ENGINE_NICE`` below its
    priority, so that when training's threads and the GUI thread all want a core, the GUI thread
    gets it first. On 2 cores, ResNet-50 fine-tuning's two torch threads took turns with the
    GUI thread, and a repaint of 30 ms of CPU took 70 ms of wall time; the window's longest
    stall, measured by bench/scale.py's heartbeat, was 128 and 168 ms at equal priority and 89
    and 97 ms with this, at the same fine-tuning speed (two runs each). Linux sets nice per thread
    and threads inherit it, so torch's OpenMP helpers, started from this thread at its first
    parallel op, run below the window too. Elsewhere (or without permission) nothing changes
    (False)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        thread = threading.get_native_id()
        now = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, now + ENGINE_NICE))
    except OSError:
        return False
    return True


def warm_up_torch() -> None:
    """The first optimizer step imports torch._dynamo: about two seconds, partly while holding the
    GIL as shared libraries load, which froze the GUI thread for 150-250 ms at a time early in the
    first fine-tune. One tiny step of each optimizer on the worker thread, right after the first
    model opens, moves that cost to start-up."""
    layer = torch.nn.Linear(2, 2)
    for optimizer in (torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9),
                      torch.optim.Adam(layer.parameters(), lr=0.1)):
        layer(torch.zeros(1, 2)).sum().backward()
        optimizer.step()


class EngineWorker(WorkerHistory, WorkerStop, QObject):
    progress = Signal(object)       # Progress
    snapshot = Signal(object)       # WeightSnapshot of the current model
    matrix = Signal(object)         # MatrixData of the watched parameter
    model_changed = Signal(object)  # ModelInfo
    opened = Signal(object)         # SessionInfo
    group = Signal(object)          # GroupSparsity of group_names, or None for no names
    layer_widths = Signal(object)   # list[LayerWidth], original against current
    semi_structured = Signal(object)  # SemiStructuredReport
    metrics = Signal(object)        # MetricsReport
    epoch = Signal(object)          # EpochResult
    steps = Signal(object)          # StepLosses
    exported = Signal(object)       # list[Path] written
    finished = Signal(str)          # op
    stopped = Signal(str)           # op, after the user's Stop
    failed = Signal(str, str)       # op, one-line message
    log = Signal(str)
    sparsity_points = Signal(object)  # SparsityPoints, while a schedule runs
    sensitivity = Signal(object)      # engine.pruning.sensitivity.SensitivityResult
    preflight = Signal(object)        # engine.structured.preflight.PreflightReport
    explanation = Signal(object)      # engine.explain.Explanation
    # engine.preview.SizePreview of the current model (it holds its own copy: the GUI thread only
    # does arithmetic on it), or a one-line reason why this model has none
    size_preview = Signal(object)
    # (list[GroupPlan] or a one-line reason, layer -> original channels removed so far)
    group_plans = Signal(object)
    runs = Signal(object)             # list[engine.runstore.StoredRun] of the open model
    steps_changed = Signal(object)    # list[str]: the undo history's step labels
    project_saved = Signal(str)
    verified = Signal(object)         # engine.verify.VerifyReport
    threshold = Signal(object)        # float: a global magnitude prune's |w| threshold; None
    mismatch = Signal(object)         # PairInfo, just before ``failed`` for an open
    partial_metrics = Signal(object)  # list[TableRow] while measuring: the figures so far

    SNAPSHOT_INTERVAL_S = 0.25
    # Live charts during training take at most this share of the worker's time: a snapshot of
    # ResNet-50 (54 layers, 25M weights) takes about 0.4 s, and one per 4-second step slowed
    # fine-tuning by a tenth.
    SNAPSHOT_SHARE = 0.05

    def __init__(self) -> None:
        super().__init__()
        self.session: Optional[Session] = None
        # (parameter name, what) the mask view shows; set from the GUI thread (a plain tuple
        # assignment is atomic) and read here when a snapshot is sent.
        self.watch: Optional[tuple[str, str]] = None
        # the parameters ticked in the model panel, whose group sparsity goes out with each new
        # state (set from the GUI thread like watch)
        self.group_names: Optional[list[str]] = None
        self.warmed_up = False
        # (session, the last SizePreview sent): reused for that session's states while shapes stay
        self._size_preview: tuple = (None, None)
        self.running_token: Optional[CancelToken] = None

    # ------------------------------------------------------------ dispatch

    @Slot(object)
    def run(self, request: Request) -> None:
        try:
            self._run(request)
        finally:
            # a fine-tune leaves its activations' pages in malloc's heaps (1.7 GB at ResNet-50
            # size): give them back while the user looks at the result (engine/memory.py)
            release_free_memory()

    def _run(self, request: Request) -> None:
        handler: Callable[[Request], None] = getattr(self, f"_do_{request.op}")
        # snapshots sent while the operation runs (live charts, schedule rounds) honour its Stop
        self.running_token = request.token
        self.pending_step = None
        try:
            # a Stop pressed while the request waited behind the previous one's work
            request.token.raise_if_cancelled()
            if request.op not in ("open", "adopt") and self.session is None:
                raise ValueError("open a model and data first")
            recipe = request.args.get("recipe")
            if recipe is not None and self.session is not None:
                # measurement settings changed in the window since the model was opened
                self.session.metrics_spec = recipe.metrics
            handler(request)
        except Cancelled:
            self.running_token = None
            self.log.emit(f"{request.op}: stopped by the user")
            self._after_stop(request.op)
            return
        except Exception as exc:  # every engine error becomes a dialog, never a dead thread
            message = one_line(exc)
            self.running_token = None
            self.log.emit(f"{request.op} failed: {message}\n{traceback.format_exc().rstrip()}")
            self._emit_state()
            self.failed.emit(request.op, message)
            return
        self.running_token = None
        self.finished.emit(request.op)
        if not self.warmed_up and self.session is not None:
            # after the first model is ready, while the user looks at it: the first optimizer
            # step's and the user's own model's imports (a request arriving now waits for this)
            warm_up_torch()
            import_quietly(HEAVY_IMPORTS)
            self.warmed_up = True

    # ------------------------------------------------------------ operations

    def _do_open(self, r: Request) -> None:
        model_spec: ModelSpec = r.args["model"]
        data_spec: DataSpec = r.args["data"]
        self.progress.emit(Progress("Opening", 0, 0, model_spec.path or model_spec.source))
        import_quietly(imports_for(model_spec.source))
        try:
            session = Session.open(model_spec, data_spec, r.args.get("metrics") or MetricsSpec(),
                                   r.args.get("seed", 0), self.log.emit)
        except PairMismatch as exc:   # the window asks for the other half, then ``failed`` follows
            self.mismatch.emit(PairInfo(str(exc), exc.kind, exc.fit, exc.data_classes,
                                        exc.data_shape, model_spec, data_spec))
            raise
        self._adopt(session, model_spec, data_spec)

    def _do_adopt(self, r: Request) -> None:
        """Takes a Session built elsewhere (tests, scripts); it must not be used there afterwards."""
        self._adopt(r.args["session"], None, None)

    def _adopt(self, session: Session, model_spec, data_spec) -> None:
        session.log = self.log.emit
        self.session = session
        self.charted_version = None   # another session's versions count from 0 too
        self.opened.emit(SessionInfo(describe_model(session.model, session.loaded.description),
                                     session.data.description, session.original_snapshot,
                                     model_spec, data_spec, session.data.has_labels))
        self._emit_state()
        self._emit_runs()


    def _do_prune(self, r: Request) -> None:
        """Masks (one-shot), a schedule (which also fine-tunes), or channel removal, as the
        recipe says; then measures and adds a history row."""
        spec: PruneSpec = r.args["spec"]
        schedule: ScheduleSpec = r.args.get("schedule") or ScheduleSpec()
        structured: StructuredSpec = r.args.get("structured") or StructuredSpec()
        self.threshold.emit(None)   # a one-shot global magnitude prune below draws a new one
        with every_core(self.session.model):
            self._prune_and_show(r, spec, schedule, structured)
        self._record_pending_step()
        self._measure_and_record(r, r.args.get("label", "prune"))

    def _prune_and_show(self, r: Request, spec: PruneSpec, schedule: ScheduleSpec,
                        structured: StructuredSpec) -> None:
        if structured.enabled:
            self.preflight.emit(self.session.preflight(structured, self.progress.emit, r.token))
            self.session.remove_channels(structured, self.progress.emit, r.token)
        elif schedule.kind != "oneshot":
            on_step, on_epoch, flush = self._live_callbacks()
            on_sparsity, flush_sparsity = self._sparsity_callback()
            def on_round(rr) -> None:  # each pruning round shows at once in the charts
                self.log.emit(f"round {rr.round}: target {rr.target:.1%}, reached "
                              f"{rr.sparsity:.1%}" + (f", accuracy {rr.accuracy:.2%}"
                                                      if rr.accuracy is not None else ""))
                flush_sparsity()
                self._emit_snapshots()

            try:
                result = self.session.run_schedule(spec, r.args["finetune"], schedule,
                                                   self.progress.emit, r.token, on_epoch, on_step,
                                                   on_sparsity=on_sparsity, on_round=on_round)
            finally:
                flush_sparsity()
            flush()
            if result.stopped == "stopped by the user":
                raise Cancelled(result.stopped)
            if result.stopped:
                self.log.emit(f"schedule ended early: {result.stopped}")
        else:
            self.session.prune(spec, self.progress.emit, r.token)
        self._show_change(r.args.get("label", "prune"), "prune")
        if not structured.enabled and schedule.kind == "oneshot":
            self.threshold.emit(global_magnitude_threshold(self.session.model, spec))

    def _do_finetune(self, r: Request) -> None:
        spec: FinetuneSpec = r.args["spec"]
        self.log.emit(f"fine-tuning {spec.epochs} epoch(s): {spec.optimizer}, lr {spec.lr:g}, "
                      f"batch {spec.batch_size}")
        on_step, on_epoch, flush = self._live_callbacks()
        with every_core(self.session.model):
            result = self.session.finetune(spec, self.progress.emit, r.token, on_epoch, on_step)
        flush()
        if result.cancelled:
            raise Cancelled("stopped by the user")
        self._show_change(r.args.get("label", "fine-tune"), "finetune")
        self._record_pending_step()
        self._measure_and_record(r, r.args.get("label", "fine-tune"))

    def _live_callbacks(self):
        """(on_step, on_epoch, flush) for training: batch losses and chart snapshots go out at
        most every SNAPSHOT_INTERVAL_S, and snapshots no more often than keeps them within
        SNAPSHOT_SHARE of the time; epochs at once."""
        pending_steps: list[int] = []
        pending_losses: list[float] = []
        last_sent = [time.monotonic()]
        interval = [self.SNAPSHOT_INTERVAL_S]

        def flush() -> None:
            if pending_steps:
                self.steps.emit(StepLosses(list(pending_steps), list(pending_losses)))
                pending_steps.clear()
                pending_losses.clear()

        def throttled_snapshot() -> None:
            now = time.monotonic()
            if now - last_sent[0] >= interval[0]:
                flush()
                # the snapshot's cost is this thread's CPU time, not the wall time: on a small
                # model most of the wall time is waiting for the GIL while the GUI thread draws
                # the previous snapshot (LeNet: 20-30 ms wall, 6-9 ms CPU), which would throttle
                # the live charts to a crawl on a busy machine; on ResNet-50 the two agree
                work_started = time.thread_time()
                self._emit_snapshots()
                last_sent[0] = time.monotonic()
                interval[0] = max(self.SNAPSHOT_INTERVAL_S,
                                  (time.thread_time() - work_started) / self.SNAPSHOT_SHARE)

        def on_step(step: int, loss: float) -> None:
            pending_steps.append(step)
            pending_losses.append(loss)
            throttled_snapshot()

        def on_epoch(result: EpochResult) -> None:
            flush()
            self.epoch.emit(result)
            throttled_snapshot()

        return on_step, on_epoch, flush

    def _sparsity_callback(self):
        """(on_sparsity, flush): a schedule's (step, sparsity) points go out at most every
        SNAPSHOT_INTERVAL_S (a gradual schedule may prune every step), the rest on flush."""
        pending: list[tuple[int, float]] = []
        last_sent = [0.0]

        def flush() -> None:
            if pending:
                self.sparsity_points.emit(SparsityPoints([s for s, _ in pending],
                                                         [float(v) for _, v in pending]))
                pending.clear()
                last_sent[0] = time.monotonic()

        def on_sparsity(step: int, sparsity: float) -> None:
            pending.append((int(step), float(sparsity)))
            if time.monotonic() - last_sent[0] >= self.SNAPSHOT_INTERVAL_S:
                flush()

        return on_sparsity, flush

    def _do_sensitivity(self, r: Request) -> None:
        """Prunes each selected layer alone over the grid on a copy of the model (the live model is
        not touched) and sends the accuracy curves."""
        grid = r.args["grid"]
        self.log.emit(f"sensitivity scan: {len(grid)} sparsities from {min(grid):.0%} to "
                      f"{max(grid):.0%}")
        result = self.session.sensitivity_scan(r.args["spec"], grid, self.progress.emit, r.token,
                                               r.args.get("max_eval_batches"))
        self.sensitivity.emit(result)

    def _do_measure(self, r: Request) -> None:
        self._measure_and_record(r, r.args.get("label", "measure"))

    def _do_revert(self, r: Request) -> None:
        self.session.revert()
        self._emit_state()
        self._emit_steps()

    def _do_export(self, r: Request) -> None:
        spec: ExportSpec = r.args["spec"]
        if self.session.original_metrics is None or self.session.current_metrics is None:
            # the JSON report carries the comparison table, so measure first when it is missing
            self.session.measure_original(self.progress.emit, r.token)
            self.session.measure_current(self.progress.emit, r.token)
        written = self.session.export(spec, r.args.get("recipe"))
        self.exported.emit(written)
        if spec.verify:
            self.verified.emit(self.session.verify_export(written, spec.kinds, self.progress.emit))

    def _do_preflight(self, r: Request) -> None:
        self.preflight.emit(self.session.preflight(r.args["spec"], self.progress.emit, r.token))

    def _do_group_plans(self, r: Request) -> None:
        """The dependency groups and the channels the given settings would remove (a copy)."""
        from engine.structured.preflight import plan_groups
        removed = dict(self.session.structured.removed_channels) if self.session.structured else {}
        try:
            plans = plan_groups(self.session.model, self.session.data.example_input(1), r.args["spec"],
                                data=self.session.data, cancel=r.token)
        except Exception as exc:   # the preview is a hint: a model it cannot trace gets a reason
            plans = f"No channel groups for this model: {str(exc).splitlines()[0][:160]}"
        self.group_plans.emit((plans, removed))

    def _do_explain(self, r: Request) -> None:
        self.explanation.emit(self.session.explain(progress=self.progress.emit, cancel=r.token))

    def _do_cluster_job(self, r: Request) -> None:
        from engine.cluster_job import write_cluster_job
        self.exported.emit(write_cluster_job(self.session, r.args["recipe"], r.args["folder"],
                                             r.args["settings"]))

    def _do_open_results(self, r: Request) -> None:
        """A checkpoint fine-tuned elsewhere: a new run in the Compare tab; the live model stays."""
        from engine.cluster_job import open_results
        record = open_results(self.session, r.args["path"], self.progress.emit, r.token)
        self.metrics.emit(MetricsReport(self.session.original_metrics, record.metrics,
                                        record.table, record.summary, record))
        self.log.emit(f"{record.label}: accuracy {record.metrics.accuracy:.2%}\n"
                      + format_table(record.table))

    def _do_matrix(self, r: Request) -> None:
        self.watch = (r.args["name"], r.args["what"])
        self._emit_matrix()

    # ------------------------------------------------------------ helpers

    def _measure_and_record(self, r: Request, label: str, store: bool = True) -> None:
        session = self.session
        # what showing the change left in malloc's heaps goes back before the original is
        # mapped in beside the model (engine/memory.py)
        release_free_memory()
        session.measure_original(self.progress.emit, r.token)
        current = session.measure_current(
            self.progress.emit, r.token,
            on_figures=lambda o, c: self.partial_metrics.emit(comparison_table(o, c)))
        original = session.original_metrics  # its latency is re-timed beside the current model's
        recipe = r.args.get("recipe")
        record = session.record_run(label, recipe.to_dict() if recipe is not None else None)
        self.metrics.emit(MetricsReport(original, current, record.table, record.summary, record))
        if store:   # a restored run or a step back is already in the store
            self._store_run(record)
        accuracy = f"{current.accuracy:.2%}" if current.accuracy is not None else NO_DATA
        self.log.emit(f"{label}: accuracy {accuracy}, "
                      f"{current.sparsity:.1%} of parameters are zero\n"
                      + format_table(record.table) + "\n" + " ".join(record.summary))

    def _emit_state(self) -> None:
        """Every view of the current model. During an operation each stage honours its Stop
        (seconds in all at ResNet-50 size); after one, nothing stops it."""
        if self.session is None:
            return
        version = self.session.model_version
        self._emit_snapshots()
        check_stop(self.running_token)
        self.model_changed.emit(describe_model(self.session.model, self.session.loaded.description))
        self._emit_details()
        check_stop(self.running_token)
        self._emit_size_preview()
        self.charted_version, self.settled_snapshot = version, self.last_snapshot

    def _emit_size_preview(self) -> None:
        """Records what the size/MACs preview needs from the current model (one traced forward
        and its dependency groups); a model channel removal cannot trace still gets the mask
        preview."""
        from engine.preview import SizePreview
        session, last = self._size_preview
        # sorting the magnitudes again takes seconds at ResNet-50 size
        preview = (last.for_weights_of(self.session.model, self.running_token)
                   if isinstance(last, SizePreview) and session is self.session else None)
        if preview is None:
            preview = self._build_size_preview()
        self._size_preview = (self.session, preview)
        self.size_preview.emit(preview)

    def _build_size_preview(self):
        """A new SizePreview of the current model, or why there is none (a string)."""
        from engine.preview import SizePreview
        example = self.session.data.example_input(1)
        preview = None
        for channels in (True, False):
            try:
                with stop_inside_passes(self.running_token):   # its traced forwards
                    preview = SizePreview.build(self.session.model, example, channels=channels,
                                                cancel=self.running_token)
                # sorted here, not on the GUI thread at the first global preview
                preview.sort_magnitudes(cancel=self.running_token)
                preview.release_weights()
                break
            except Cancelled:
                raise
            except Exception as exc:   # an untraceable model: say why instead of a preview
                preview = f"no size preview for this model ({type(exc).__name__})"
        return preview

    def _emit_snapshots(self) -> None:
        self.last_snapshot = self.session.snapshot(cancel=self.running_token)
        self.snapshot.emit(self.last_snapshot)
        self._emit_matrix()

    def _emit_matrix(self) -> None:
        if self.watch is None or self.session is None:
            return
        name, what = self.watch
        target = dict(self.session.model.named_parameters())
        param = target.get(name) if name in target else target.get(name + "_orig")
        if param is None:
            return
        # weight_matrix may return a view of the live parameter: copy before it crosses threads
        image = np.array(weight_matrix(self.session.model, name, what), dtype=np.float32, copy=True)
        original = dict(self.session.original.named_parameters())
        original_param = original.get(name) if name in original else original.get(name + "_orig")
        self.matrix.emit(MatrixData(name, what, tuple(param.shape), image, *self._corners(name),
                                    original_shape=None if original_param is None
                                    else tuple(original_param.shape)))

    # ------------------------------------------------------------ parameter groups, widths, 2:4

    def _do_group(self, r: Request) -> None:
        self.group_names = r.args["names"]
        self._emit_group()

    def _do_semi_structured(self, r: Request) -> None:
        """2:4 sparse kernels on a GPU copy of the current model: outputs checked, both timed."""
        report = self.session.semi_structured(apply_mask=r.args.get("apply_mask", False),
                                              progress=self.progress.emit, cancel=r.token)
        for layer in report.layers:
            self.log.emit(f"  {layer.name} {layer.shape[0]}x{layer.shape[1]}: "
                          + ("converted" if layer.converted else f"kept dense ({layer.reason})"))
        self.semi_structured.emit(report)

    def _emit_details(self) -> None:
        self._emit_group()
        self.layer_widths.emit(self.session.layer_widths())

    def _emit_group(self) -> None:
        if self.session is None or self.group_names is None:
            return
        try:
            # an empty include list means "everything" to the engine; here it is an empty group
            group = group_sparsity(self.session.model, self.group_names) if self.group_names else None
        except ValueError:   # names of a model no longer open: the panel sends the new ones
            group = None
        self.group.emit(group)

    def _corners(self, name: str) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        try:
            return (weight_corner(self.session.original, name),
                    weight_corner(self.session.model, name))
        except ValueError:   # not a prunable parameter of one of the two models
            return None, None


# criteria whose fine-grained global ranking is by |w| alone: one threshold holds for every layer
MAGNITUDE_CRITERIA = ("l1", "l2")


@torch.no_grad()
def global_magnitude_threshold(model: torch.nn.Module, spec: PruneSpec) -> Optional[float]:
    """The smallest |w| kept over the selected parameters after a global, fine-grained magnitude
    prune (every weight below it was pruned, in every layer); None for any other kind of prune."""
    if (spec.scope != "global" or spec.granularity != "fine" or spec.method not in MAGNITUDE_CRITERIA
            or spec.per_layer):
        return None
    from engine.pruning.targets import select_targets
    # the layers the prune chose, by name, as the prune itself selects them (include and exclude);
    # describe_model would count every weight's non-zeros a second time
    targets = select_targets(model, spec.include, spec.exclude)
    smallest = None
    for target in targets:
        weight = getattr(target.module, target.param_name)   # as the last forward left it
        # the least |w| among non-zeros, without gathering them (a copy of 25M weights)
        magnitudes = weight.detach().abs()
        magnitudes.masked_fill_(magnitudes == 0, float("inf"))
        value = float(magnitudes.amin()) if magnitudes.numel() else float("inf")
        if value != float("inf"):
            smallest = value if smallest is None else min(smallest, value)
    return smallest

"""Run settings as dataclasses that round-trip through a JSON recipe.

The GUI builds a :class:`Recipe` from its controls and the CLI reads one from a file, so both run
exactly the same thing. Loading is strict: an unknown key or a value of the wrong type is rejected
with a message naming it, because a silently ignored typo ("sparsty") would run the wrong experiment.
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from engine.paths import output_base


class RecipeError(ValueError):
    """A recipe or setting that cannot be run; the message names the offending key."""


# A recipe is a few levels deep; anything far deeper is not a recipe, and left to recurse it would
# end in a RecursionError instead of a message.
MAX_RECIPE_DEPTH = 32
# Whole numbers in a recipe count things (samples, epochs, runs): beyond this none is meaningful,
# and larger values overflow in torch or itertools with messages that name no key.
MAX_COUNT = 2 ** 31 - 1


SCOPES = ("local", "global")
OPTIMIZERS = ("sgd", "adam")
EXPORT_FORMATS = ("pt", "safetensors")
# engine.pruning.schedules.SCHEDULES holds these (with their options); listed here so validating a
# recipe does not import torch.
SCHEDULE_KINDS = ("oneshot", "iterative", "gradual", "at_init")
# What ExportSpec.formats may name; "state_dict" is the folded .pt/.safetensors file at export.path.
EXPORT_KINDS = ("state_dict", "shapes", "torchscript", "onnx", "pickle")
STRUCTURED_IMPORTANCES = ("l1", "l2", "taylor", "bn")
STRUCTURED_SCOPES = ("uniform", "global")


@dataclass
class ModelSpec:
    """Where the model comes from.

    source: ``demo`` (the shipped LeNet), ``torchvision`` (an architecture by name, random init or
    ``path`` to local weights), ``state_dict`` (``path`` + ``arch``), ``python`` (a class or factory
    ``factory`` in the user's file ``path``, with its weights from the state_dict file ``weights``
    when given: ``.pt``/``.pth``/``.safetensors``, nested or ``module.``-prefixed), ``pickle`` (a full pickled model; runs code, so only
    with ``trust_pickle``), ``text_demo`` (the shipped BiLSTM trained on the text demo), ``hf`` (a
    local Hugging Face sequence-classification folder ``path``; needs the ``bert`` extra). A
    channel-pruned export loads as ``state_dict`` with ``shapes`` naming its ``.shapes.json`` (the
    architecture comes from that file).

    ``arch_options`` passes settings to a built-in architecture that needs more than
    ``num_classes``, e.g. ``{"vocab_size": 5000, "emb_dim": 100}`` for ``bilstm``; a BiLSTM
    checkpoint's own settings come from the JSON beside it (or its shapes) and these override them.
    """
    source: str = "demo"
    arch: str = "lenet"
    path: Optional[str] = None
    factory: Optional[str] = None
    num_classes: int = 10
    trust_pickle: bool = False
    shapes: Optional[str] = None
    weights: Optional[str] = None
    arch_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        from engine.models.sources import MODEL_SOURCE_REGISTRY   # plain Python, no torch
        source = _source("model", self, MODEL_SOURCE_REGISTRY)
        _require_fields("model", self, source)
        source.check(self)
        if self.num_classes < 1:
            raise RecipeError("model.num_classes must be at least 1")
        if self.weights and "weights" not in source.takes:
            raise RecipeError(f"model.weights (a state_dict file) goes with model.source "
                              f"{_taken_by(MODEL_SOURCE_REGISTRY, 'weights')}; other sources take "
                              f"their weights from model.path")
        if self.shapes is not None and "shapes" not in source.takes:
            raise RecipeError(f"model.shapes (a layer-shapes JSON) goes with model.source "
                              f"{_taken_by(MODEL_SOURCE_REGISTRY, 'shapes')}")


@dataclass
class DataSpec:
    """Evaluation and fine-tuning data. ``root`` is a local folder; nothing is ever downloaded.

    Text sources: ``text_demo`` (the shipped 4-class news demo), ``text_csv`` (AG_NEWS-format CSV:
    label 1-based, title, description), ``text_tsv`` (``text<TAB>label``, 0-based) -- both with the
    built-in tokenizer -- and ``hf_tsv`` (``text<TAB>label`` through a Hugging Face model's
    tokenizer). ``root`` is a folder with train and test files (and optional ``classes.txt``) or one
    file split 80/20. The vocabulary is ``vocab_path`` when given, else the model's own (a BiLSTM
    checkpoint's JSON), else built from the training split with ``vocab_min_freq`` and
    ``vocab_max_size``. ``vectors_path`` (a fastText ``.vec`` file) initialises the model's embedding
    rows for known words, as seed 000 does before training. ``text_max_len`` truncates texts
    (tokens); ``example_tokens`` is the token count MACs and latency are measured at (default: the
    median test text). ``tokenizer_path`` is the ``hf_tsv`` tokenizer folder (default: the model's).

    ``val_fraction`` of the training split (a fixed draw, the same on every run) is held out as a
    validation split: it picks the best fine-tuning epoch, decides early stopping, drives the
    sensitivity scan and the iterative schedule's accuracy floor. The test split is only reported,
    never used to choose, so the accuracy PruneLab reports is not tuned on the data it is measured
    on. ``0`` holds nothing out: fine-tuning keeps its last epoch and decisions fall back to the
    test split (the log says so).
    """
    source: str = "demo"
    root: Optional[str] = None
    image_size: int = 28
    channels: int = 1
    mean: Optional[list[float]] = None
    std: Optional[list[float]] = None
    batch_size: int = 128
    num_workers: int = 0
    max_eval_samples: Optional[int] = None
    text_max_len: Optional[int] = None
    vocab_path: Optional[str] = None
    vocab_min_freq: int = 1
    vocab_max_size: Optional[int] = None
    vectors_path: Optional[str] = None
    tokenizer_path: Optional[str] = None
    example_tokens: Optional[int] = None
    val_fraction: float = 0.1
    # source "none" (no-data mode, engine.data.synthetic): one input's shape without the batch,
    # e.g. [3, 224, 224] or [64] tokens; null infers it from the model
    input_shape: Optional[list[int]] = None

    def validate(self) -> None:
        from engine.data.sources import DATA_SOURCE_REGISTRY   # plain Python, no torch
        source = _source("data", self, DATA_SOURCE_REGISTRY)
        if self.input_shape is not None and (not self.input_shape
                                             or any(n < 1 for n in self.input_shape)):
            raise RecipeError("data.input_shape must list one or more sizes, each at least 1")
        if self.input_shape is not None and "input_shape" not in source.takes:
            raise RecipeError(f"data.input_shape is for data.source "
                              f"{_taken_by(DATA_SOURCE_REGISTRY, 'input_shape')} (synthetic inputs)")
        if not 0.0 <= self.val_fraction <= 0.5:
            raise RecipeError(f"data.val_fraction must be in [0, 0.5], got {self.val_fraction}")
        _require_fields("data", self, source)
        if self.image_size < 4:
            raise RecipeError("data.image_size must be at least 4")
        if self.channels not in (1, 3):
            raise RecipeError("data.channels must be 1 or 3")
        for key in ("mean", "std"):
            value = getattr(self, key)
            if value is not None and len(value) not in (1, self.channels):
                raise RecipeError(f"data.{key} must have 1 or {self.channels} values")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise RecipeError("data.std values must be positive")
        if self.batch_size < 1:
            raise RecipeError("data.batch_size must be at least 1")
        if self.max_eval_samples is not None and self.max_eval_samples < 1:
            raise RecipeError("data.max_eval_samples must be at least 1 (or null for all)")
        for key in ("text_max_len", "example_tokens"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise RecipeError(f"data.{key} must be at least 1")
        if self.vocab_min_freq < 1:
            raise RecipeError("data.vocab_min_freq must be at least 1")
        if self.vocab_max_size is not None and self.vocab_max_size < 5:
            raise RecipeError("data.vocab_max_size must be at least 5 (4 special tokens + 1 word)")
        if not source.text:
            for key in ("vocab_path", "vectors_path", "tokenizer_path"):
                if getattr(self, key):
                    raise RecipeError(f"data.{key} applies to text data only, not data.source "
                                      f"'{self.source}'")


@dataclass
class SensitivitySpec:
    """Per-layer ratios from a sensitivity scan: each selected layer is pruned alone at every
    sparsity of ``grid`` (with the run's criterion and granularity) and the validation accuracy measured;
    the ratios proposed then meet ``prune.sparsity`` over the selected layers (by parameter count)
    with the least predicted accuracy loss. ``max_eval_batches`` limits the test batches per point
    (256 samples each) to make the scan faster."""
    grid: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    max_eval_batches: Optional[int] = None

    def validate(self) -> None:
        if not self.grid:
            raise RecipeError("prune.sensitivity.grid needs at least one sparsity")
        for i, value in enumerate(self.grid):
            _fraction(f"prune.sensitivity.grid[{i}]", value)
        if self.max_eval_batches is not None and self.max_eval_batches < 1:
            raise RecipeError("prune.sensitivity.max_eval_batches must be at least 1")


@dataclass
class PruneSpec:
    """What to prune and how.

    ``sparsity`` is the fraction of weights to zero (uniform, or the global target when ``scope`` is
    ``global``). ``per_layer`` maps a parameter name (``conv1.weight``) to its own sparsity and
    overrides ``sparsity`` for that layer. ``include``/``exclude`` select parameters by exact name or
    glob pattern; by default every conv/linear weight is a candidate.

    ``plugin`` is a user's Python file whose methods become available as ``method`` (it runs code:
    a recipe you run is trusted as you wrote it; see :mod:`engine.pruning.custom`). ``sensitivity``,
    when set, replaces ``per_layer`` by ratios proposed from a sensitivity scan that meet
    ``sparsity`` over the selected layers.
    """
    method: str = "l1"
    granularity: str = "fine"
    scope: str = "local"
    sparsity: float = 0.5
    per_layer: Optional[dict[str, float]] = None
    include: Optional[list[str]] = None
    exclude: Optional[list[str]] = None
    min_density: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    make_permanent: bool = False
    plugin: Optional[str] = None
    sensitivity: Optional[SensitivitySpec] = None

    def validate(self) -> None:
        _choice("prune.scope", self.scope, SCOPES)
        if self.sensitivity is not None:
            self.sensitivity.validate()
            if self.scope != "local" or self.per_layer:
                raise RecipeError("prune.sensitivity proposes per-layer ratios: use scope 'local' "
                                  "and no prune.per_layer")
        _fraction("prune.sparsity", self.sparsity)
        for name, value in (self.per_layer or {}).items():
            _fraction(f"prune.per_layer['{name}']", value)
        if not 0.0 <= self.min_density < 1.0:
            raise RecipeError("prune.min_density must be in [0, 1)")
        if self.min_density and self.scope != "global":
            # with local scope each layer's own sparsity already fixes what it keeps; accepting
            # the floor and ignoring it would report one experiment and run another
            raise RecipeError("prune.min_density is a floor under the global threshold and applies "
                              "to scope 'global' only; with scope 'local' set each layer's "
                              "sparsity (prune.per_layer) instead")


@dataclass
class FinetuneSpec:
    """Fine-tuning with masks held fixed. ``epochs`` 0 skips it."""
    epochs: int = 0
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    patience: Optional[int] = None
    max_batches_per_epoch: Optional[int] = None
    device: str = "auto"

    def validate(self) -> None:
        if self.epochs < 0:
            raise RecipeError("finetune.epochs must be >= 0")
        _choice("finetune.optimizer", self.optimizer, OPTIMIZERS)
        if self.lr <= 0:
            raise RecipeError("finetune.lr must be positive")
        if not 0 <= self.momentum < 1:
            raise RecipeError("finetune.momentum must be in [0, 1)")
        if self.weight_decay < 0:
            raise RecipeError("finetune.weight_decay must be >= 0")
        if self.batch_size < 1:
            raise RecipeError("finetune.batch_size must be at least 1")
        if self.patience is not None and self.patience < 1:
            raise RecipeError("finetune.patience must be at least 1")
        if self.max_batches_per_epoch is not None and self.max_batches_per_epoch < 1:
            raise RecipeError("finetune.max_batches_per_epoch must be at least 1 (or null for all)")
        for key in ("lr", "momentum", "weight_decay"):
            if not math.isfinite(getattr(self, key)):
                raise RecipeError(f"finetune.{key} must be a finite number")
        _choice("finetune.device", self.device, ("auto", "cpu", "cuda"))


@dataclass
class ScheduleSpec:
    """When and how often pruning happens (see :mod:`engine.pruning.schedules`).

    ``kind``: ``oneshot`` (prune once, then fine-tune), ``iterative`` (rounds of prune → fine-tune
    → evaluate), ``gradual`` (Zhu & Gupta's cubic schedule during fine-tuning), ``at_init``
    (re-initialise, prune, train the sparse network from scratch). ``options`` are the schedule's
    own (rounds, accuracy_floor, every, ...), validated against its registry entry.
    """
    kind: str = "oneshot"
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        _choice("schedule.kind", self.kind, SCHEDULE_KINDS)
        from engine.pruning.schedules import SCHEDULES   # plain Python, no torch
        from engine.registry import OptionError
        known = {o.name for o in SCHEDULES.get(self.kind).options}
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise RecipeError(f"schedule '{self.kind}' has no option {', '.join(unknown)}"
                              + (f" (options: {', '.join(sorted(known))})" if known else ""))
        try:
            SCHEDULES.create(self.kind, self.options)
        except OptionError as exc:
            raise RecipeError(str(exc)) from None


@dataclass
class MetricsSpec:
    """How the comparison table is measured. ``channels_last`` times image models (4-D inputs) in
    the channels-last memory format, as CNNs are often deployed on CPUs: it can change how much of
    a channel-pruned model's MACs reduction shows up as speed (both models are timed the same way)."""
    latency_batch_size: int = 1
    latency_runs: int = 50
    latency_warmup: int = 10
    measure_latency: bool = True
    channels_last: bool = False
    # image models without channels_last: "fastest" times NCHW and channels-last (interleaved) and
    # keeps each model's faster, stating which; "nchw" times the default layout only
    latency_layout: str = "fastest"
    # a parameter whose top-left corner is shown before and after (seed 002 prints a 5x5 one)
    show_corner: Optional[str] = None
    corner_size: int = 5

    def validate(self) -> None:
        if self.latency_batch_size < 1 or self.latency_runs < 1 or self.latency_warmup < 0:
            raise RecipeError("metrics.latency_batch_size and latency_runs must be >= 1, "
                              "latency_warmup >= 0")
        if self.corner_size < 1:
            raise RecipeError("metrics.corner_size must be at least 1")
        _choice("metrics.latency_layout", self.latency_layout, ("fastest", "nchw"))


@dataclass
class StructuredSpec:
    """Structured pruning that physically removes channels/filters (torch-pruning's dependency graph).

    ``ratio`` is the fraction of channels removed: the same in every layer when ``scope`` is
    ``uniform``, or the overall fraction when ``scope`` is ``global`` (layers then differ; none loses
    more than ``max_layer_ratio``). ``importance`` ranks channels: ``l1``/``l2`` weight magnitude,
    ``taylor`` (|weight x gradient| over ``taylor_batches`` training batches), ``bn`` (BatchNorm scale).
    ``round_to`` keeps every pruned width a multiple of it (8 suits SIMD and tensor cores).
    The classifier's outputs are always kept; ``exclude`` names further modules (names, globs,
    ``re:`` regex) whose output channels are kept. When ``enabled``, a recipe removes channels
    instead of applying the mask pruning in ``prune``.
    """
    enabled: bool = False
    ratio: float = 0.5
    importance: str = "l1"
    scope: str = "uniform"
    round_to: Optional[int] = None
    max_layer_ratio: float = 0.9
    exclude: Optional[list[str]] = None
    iterative_steps: int = 1
    taylor_batches: int = 4

    def validate(self) -> None:
        _choice("structured.importance", self.importance, STRUCTURED_IMPORTANCES)
        _choice("structured.scope", self.scope, STRUCTURED_SCOPES)
        if not 0.0 < self.ratio < 1.0:
            raise RecipeError(f"structured.ratio must be in (0, 1), got {self.ratio}")
        if not 0.0 < self.max_layer_ratio < 1.0:
            raise RecipeError(f"structured.max_layer_ratio must be in (0, 1), got {self.max_layer_ratio}")
        if self.round_to is not None and self.round_to < 1:
            raise RecipeError("structured.round_to must be at least 1 (or null for no rounding)")
        if self.iterative_steps < 1:
            raise RecipeError("structured.iterative_steps must be at least 1")
        if self.taylor_batches < 1:
            raise RecipeError("structured.taylor_batches must be at least 1")


@dataclass
class ExportSpec:
    """Where the pruned checkpoint goes. ``path`` None skips export; format follows the suffix.

    ``formats`` (default: just ``state_dict``) adds files beside ``path``: ``shapes`` (the layer
    shapes as JSON, from which :mod:`engine.structured.rebuild` rebuilds a channel-pruned model with
    no pickle), ``torchscript``, ``onnx``, ``pickle`` (a whole pickled model: loading it runs code).
    ``verify`` loads every written file in a fresh process, as a user elsewhere would, and compares
    its outputs with the live model's (:mod:`engine.verify`); a difference is an error.
    """
    path: Optional[str] = None
    include_masks: bool = False
    report: bool = True
    formats: Optional[list[str]] = None
    verify: bool = False

    def validate(self) -> None:
        if self.path is not None:
            suffix = Path(self.path).suffix.lower().lstrip(".")
            if suffix not in ("pt", "pth", "safetensors"):
                raise RecipeError(f"export.path must end in .pt, .pth or .safetensors, "
                                  f"not '{Path(self.path).suffix}'")
        for i, kind in enumerate(self.formats or []):
            _choice(f"export.formats[{i}]", kind, EXPORT_KINDS)

    @property
    def kinds(self) -> list[str]:
        """The requested files; the state_dict is always written (the shapes JSON describes it)."""
        kinds = ["state_dict"]
        for kind in self.formats or []:
            if kind not in kinds:
                kinds.append(kind)
        return kinds


@dataclass
class Recipe:
    name: str = "untitled"
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    prune: PruneSpec = field(default_factory=PruneSpec)
    finetune: FinetuneSpec = field(default_factory=FinetuneSpec)
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    export: ExportSpec = field(default_factory=ExportSpec)
    seed: int = 0
    structured: StructuredSpec = field(default_factory=StructuredSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)

    def validate(self) -> "Recipe":
        for part in (self.model, self.data, self.prune, self.structured, self.schedule,
                     self.finetune, self.metrics,
                     self.export):
            part.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> "Recipe":
        return from_dict(cls, data, "recipe").validate()

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RecipeError(f"cannot read recipe {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise RecipeError(f"{path} is not a UTF-8 text file (a recipe is JSON)") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecipeError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} "
                              f"column {exc.colno}") from None
        except RecursionError:
            raise RecipeError(f"{path} is nested too deeply to be a recipe (at most "
                              f"{MAX_RECIPE_DEPTH} levels)") from None
        recipe = cls.from_dict(data)
        recipe._resolve_paths(path.parent)
        return recipe

    def save(self, path: str | Path) -> None:
        from engine.io import atomic_write_text
        atomic_write_text(Path(path), self.to_json() + "\n")

    def _resolve_paths(self, base: Path) -> None:
        """Relative paths in a recipe file are relative to the recipe, so recipes travel with data;
        a recipe shipped inside the installed package writes below the current folder instead."""
        outputs = output_base(base)
        for spec, key in ((self.model, "path"), (self.model, "shapes"), (self.model, "weights"),
                          (self.data, "root"),
                          (self.data, "vocab_path"), (self.data, "vectors_path"),
                          (self.data, "tokenizer_path"), (self.export, "path"),
                          (self.prune, "plugin")):
            value = getattr(spec, key)
            if value and not Path(value).expanduser().is_absolute():
                folder = outputs if spec is self.export and key == "path" else base
                setattr(spec, key, str((folder / value).resolve()))


# ---------------------------------------------------------------- strict dataclass loading

def from_dict(cls: type, data: Any, where: str) -> Any:
    if where == "recipe":
        _check_depth(data)
    if not isinstance(data, dict):
        raise RecipeError(f"{where} must be a JSON object, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecipeError(f"unknown key{'s' if len(unknown) > 1 else ''} in {where}: "
                          f"{', '.join(unknown)} (known: {', '.join(sorted(known))})")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def _check_depth(data: Any) -> None:
    """Iterative, so a hostile document cannot exhaust the stack while being measured."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_RECIPE_DEPTH:
            raise RecipeError(f"the recipe is nested more than {MAX_RECIPE_DEPTH} levels deep; "
                              f"a recipe is a few levels of objects")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except RecipeError as exc:
                errors.append(str(exc))
        raise RecipeError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{where} must be a list, not {_json_type(value)}")
        (item,) = typing.get_args(tp)
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where} must be an object, not {_json_type(value)}")
        _, item = typing.get_args(tp)
        return {str(k): _coerce(item, v, f"{where}['{k}']") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{where} must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{where} must be a whole number, not {value!r}")
        if abs(value) > MAX_COUNT:
            raise RecipeError(f"{where} is out of range: {value} (at most {MAX_COUNT:,})")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{where} must be a number, not {value!r}")
        if not math.isfinite(value):   # JSON parsers accept NaN and Infinity
            raise RecipeError(f"{where} must be a finite number, not {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise RecipeError(f"{where} must be a string, not {value!r}")
        return value
    raise RecipeError(f"{where}: unsupported setting type {tp}")


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def __getattr__(name: str) -> tuple[str, ...]:
    """``MODEL_SOURCES``, ``DATA_SOURCES``, ``TEXT_DATA_SOURCES``: the names registered in
    engine.models.sources and engine.data.sources, in their order, read when asked (those packages
    import this module, so they cannot be read while it loads)."""
    if name == "MODEL_SOURCES":
        from engine.models.sources import MODEL_SOURCE_REGISTRY
        return tuple(MODEL_SOURCE_REGISTRY.names())
    if name in ("DATA_SOURCES", "TEXT_DATA_SOURCES"):
        from engine.data.sources import DATA_SOURCE_REGISTRY
        return tuple(s.name for s in DATA_SOURCE_REGISTRY if s.text or name == "DATA_SOURCES")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _source(section: str, spec: Any, registry: Any) -> Any:
    """The registered source ``spec.source`` names; an unknown name is a one-line message."""
    _choice(f"{section}.source", spec.source, tuple(registry.names()))
    return registry.get(spec.source)


def _require_fields(section: str, spec: Any, source: Any) -> None:
    """A one-line message naming the first field the source requires and the spec lacks."""
    for key, what in source.requires.items():
        if not getattr(spec, key):
            raise RecipeError(f"{what} is required when {section}.source is '{source.name}'")


def _taken_by(registry: Any, key: str) -> str:
    """The sources that read the optional field ``key``, quoted: "'python'"."""
    return " or ".join(f"'{s.name}'" for s in registry if key in s.takes)


def _choice(where: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise RecipeError(f"{where} must be one of {', '.join(choices)}; got '{value}'")


def _fraction(where: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise RecipeError(f"{where} must be a sparsity in [0, 1), got {value}")

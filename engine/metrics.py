"""Everything the comparison table shows, measured, never estimated from settings.

- accuracy, loss, macro precision/recall/F1 from a confusion matrix over the test split;
- parameters and non-zero parameters of the effective (mask-applied) weights;
- dense file size (the bytes torch.save writes for the exported state_dict, measured) and
  sparse-storage size (each distinct tensor stored as the smaller of dense or a bitmap of non-zeros
  plus the non-zero values);
- MACs by torchprofile (dense: what the hardware executes without sparse kernels) and effective
  MACs: the same total with each conv/linear/recurrent layer's MACs (every call of it) scaled by its
  weight density; the operations without weights that torchprofile counts (BatchNorm, ...) stay
  in unscaled;
- latency: warm-up runs, then the median of timed runs at a stated batch size; throughput.
"""
from __future__ import annotations

import contextlib
import copy
import statistics
import time
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from engine.counting import count_nonzero
from engine.progress import CancelToken, ProgressFn, ProgressTracker, without_pass_checks
from engine.pruning.targets import prunable_targets
from engine.transaction import ModelModes


@dataclass
class EvalResult:
    accuracy: float
    loss: float
    precision: float
    recall: float
    f1: float
    samples: int


@dataclass
class ModelMetrics:
    """One column of the comparison table."""
    accuracy: Optional[float] = None
    loss: Optional[float] = None
    f1: Optional[float] = None
    precision: Optional[float] = None
    recall: Optional[float] = None
    params: int = 0
    nonzero_params: int = 0
    dense_bytes: int = 0
    sparse_bytes: int = 0
    macs: Optional[int] = None
    effective_macs: Optional[int] = None
    latency_ms: Optional[float] = None
    throughput: Optional[float] = None
    latency_batch: int = 1
    device: str = "cpu"
    latency_gpu_ms: Optional[float] = None   # also measured on CUDA when the model runs on the CPU
    memory_format: str = ""     # "channels_last" when latency was timed in that layout
    layout_chosen: bool = False  # memory_format is the faster of NCHW and channels-last, timed both
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    input_note: str = ""        # what one example is beyond its batch size, e.g. "64 tokens"
    nonfinite: int = 0          # NaN/inf values in its parameters and buffers (engine.finite)
    labelled: bool = True       # False in no-data mode: accuracy and the like were not measured

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero_params / self.params if self.params else 0.0


def resolve_device(name: str = "auto") -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("CUDA was requested but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def forward_batch(model: nn.Module, inputs):
    """Models take a tensor, or a tuple of tensors (text models take tokens and lengths)."""
    return model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs)


def to_device(inputs, device: torch.device):
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs)
    return inputs.to(device)


def split_batch(batch):
    """(inputs, labels) from a loader batch; the last element is always the label."""
    *inputs, labels = batch
    return (inputs[0] if len(inputs) == 1 else tuple(inputs)), labels


# Evaluation batches are sized by time, not fixed: one batch takes about EVAL_BATCH_SECONDS, so
# progress moves and per-batch work stays short on a big model, and at most EVAL_BATCH_CAP samples,
# which bounds the activations held at once (256 ResNet-50 images at 224x224 need gigabytes).
EVAL_BATCH_SECONDS = 0.2
EVAL_BATCH_CAP = 256
_PROBE_BATCH = 2
_eval_batch_cache: "weakref.WeakKeyDictionary[nn.Module, int]" = weakref.WeakKeyDictionary()


@torch.no_grad()
def eval_batch_size(model: nn.Module, data, target_s: float = EVAL_BATCH_SECONDS,
                    cap: int = EVAL_BATCH_CAP) -> int:
    """The evaluation batch size for ``model`` on ``data``: timed once per model on a batch of two
    examples (a cold first pass is slower, so this errs toward smaller batches), then remembered."""
    cached = _eval_batch_cache.get(model)
    if cached is not None:
        return cached
    was_training = model.training
    model.eval()
    try:
        example = to_device(data.example_input(_PROBE_BATCH), model_device(model))
        start = time.perf_counter()
        forward_batch(model, example)
        per_sample = (time.perf_counter() - start) / _PROBE_BATCH
    finally:
        model.train(was_training)
    size = max(1, min(cap, int(target_s / max(per_sample, 1e-9))))
    _eval_batch_cache[model] = size
    return size


@torch.no_grad()
def evaluate(model: nn.Module, loader, num_classes: int, progress: Optional[ProgressFn] = None,
             cancel: Optional[CancelToken] = None, stage: str = "Evaluating",
             reduce: Optional[Callable] = None) -> EvalResult:
    """``reduce(confusion, loss_sum, n)`` combines the counts of every process when each evaluates
    a shard (see engine.distributed)."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    loss_sum, n = 0.0, 0
    tracker = ProgressTracker(stage, len(loader), progress)
    for step, batch in enumerate(loader, 1):
        if cancel is not None:
            cancel.raise_if_cancelled()
        inputs, labels = split_batch(batch)
        inputs, labels = to_device(inputs, device), labels.to(device)
        logits = forward_batch(model, inputs)
        loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        predicted = logits.argmax(1)
        confusion += torch.bincount(labels.cpu() * num_classes + predicted.cpu(),
                                    minlength=num_classes ** 2).view(num_classes, num_classes)
        n += labels.numel()
        tracker.update(step)
    model.train(was_training)
    if reduce is not None:
        confusion, loss_sum, n = reduce(confusion, loss_sum, n)
    return _scores(confusion, loss_sum, n)


def _scores(confusion: torch.Tensor, loss_sum: float, n: int) -> EvalResult:
    tp = confusion.diag().double()
    predicted = confusion.sum(0).double()
    actual = confusion.sum(1).double()
    present = actual > 0  # macro average over classes present in the test split
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = tp / actual.clamp(min=1)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall),
                     torch.zeros_like(tp))
    k = max(1, int(present.sum()))
    return EvalResult(accuracy=float(tp.sum() / max(n, 1)), loss=loss_sum / max(n, 1),
                      precision=float(precision[present].sum() / k),
                      recall=float(recall[present].sum() / k),
                      f1=float(f1[present].sum() / k), samples=n)


@torch.no_grad()
def effective_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict as plain PyTorch would see it after the masks are folded in."""
    from engine.models.checkpoints import fold_mask_entries
    return dict(fold_mask_entries(model.state_dict()))


def _is_parameter_key(model: nn.Module, key: str) -> bool:
    names = {n[:-5] if n.endswith("_orig") else n for n, _ in model.named_parameters()}
    return key in names


@torch.no_grad()
def count_parameters(model: nn.Module) -> tuple[int, int]:
    total = nonzero = 0
    for name, tensor in effective_state(model).items():
        if _is_parameter_key(model, name):
            total += tensor.numel()
            nonzero += count_nonzero(tensor)
    return total, nonzero


class _ByteCounter:
    """A write-only file that keeps nothing but the number of bytes written to it."""
    def __init__(self) -> None:
        self.count = 0

    def write(self, data) -> int:
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        pass


@torch.no_grad()
def storage_bytes(model: nn.Module) -> tuple[int, int]:
    """(bytes ``torch.save`` writes for the exported state_dict, sparse-storage bytes).

    The dense figure is measured, not added up: the state_dict export writes is serialised into a
    byte counter, so the zip container, the pickled keys and shared storage (tied weights saved
    once) are what torch really writes. An export writes through a file object too, so the archive
    inside is named "archive" whatever the file is called and its size is exactly this. The sparse
    figure is the tensor payload alone, each distinct tensor once, stored as the smaller of dense
    or a bitmap of non-zeros plus their values.
    """
    from engine.export import plain_tensors
    tensors = plain_tensors(effective_state(model))
    counter = _ByteCounter()
    torch.save(tensors, counter)
    sparse, seen = 0, set()
    for tensor in tensors.values():
        identity = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(),
                    tuple(tensor.shape), tensor.stride(), tensor.dtype)
        if identity in seen:
            continue   # a tied weight: one tensor under two keys
        seen.add(identity)
        size = tensor.numel() * tensor.element_size()
        bitmap = (tensor.numel() + 7) // 8 + count_nonzero(tensor) * tensor.element_size()
        sparse += min(size, bitmap)
    return counter.count, sparse


def layer_sparsity(model: nn.Module) -> dict[str, float]:
    out = {}
    with torch.no_grad():
        for t in prunable_targets(model):
            w = t.weight()
            out[t.name] = 1.0 - count_nonzero(w) / w.numel()
    return out


# torchprofile's recurrent handler reads a packed sequence's 2-D data as (batch, seq) and
# overcounts by the hidden width; PruneLab counts recurrent layers itself (see _recurrent_macs).
RECURRENT_OPS = frozenset({"aten::lstm", "aten::gru", "aten::rnn_tanh", "aten::rnn_relu"})


def _recurrent_weights(module: nn.RNNBase) -> list[torch.Tensor]:
    return [getattr(module, name) for name in module._flat_weights_names if name.startswith("weight_")]


def _recurrent_steps(module: nn.RNNBase, inputs) -> int:
    """Token steps one direction of one layer runs: the packed data's rows (real tokens only), or
    batch x time for a padded tensor."""
    x = inputs[0]
    if isinstance(x, nn.utils.rnn.PackedSequence):
        return int(x.data.shape[0])
    return int(x.shape[0] * x.shape[1]) if x.dim() == 3 else int(x.shape[0])


@torch.no_grad()
def count_macs(model: nn.Module, example_input) -> tuple[int, int]:
    """(dense MACs by torchprofile, effective MACs with each conv/linear scaled by its density).

    Effective MACs are the torchprofile total less the MACs of zero weights, per conv/linear/
    recurrent layer and summed over every call of it; operations without weights that
    torchprofile counts (normalisation, average pooling, element-wise products) stay in unscaled.

    The per-layer MACs come from forward hooks on the same input so the two numbers describe the
    same computation. Recurrent layers (LSTM/GRU/RNN) are counted here, not by torchprofile: every
    token step multiplies each input-hidden and hidden-hidden weight once, per layer and direction.
    """
    dense, per_layer, model = macs_by_layer(model, example_input)
    modules = dict(model.named_modules())
    saved = 0.0
    for name, macs in per_layer.items():
        weights = layer_weights(modules[name])
        density = (sum(count_nonzero(w) for w in weights)
                   / max(1, sum(w.numel() for w in weights)))
        saved += macs * (1.0 - density)
    return dense, max(0, int(round(dense - saved)))


def layer_weights(module: nn.Module) -> list[torch.Tensor]:
    """The weights whose zeros effective MACs discount: a conv/linear weight, a recurrent layer's."""
    return _recurrent_weights(module) if isinstance(module, nn.RNNBase) else [module.weight]


@torch.no_grad()
def macs_by_layer(model: nn.Module, example_input) -> tuple[int, dict[str, int], nn.Module]:
    """(dense MACs, conv/linear/recurrent layer name -> its MACs, the plain CPU copy profiled).
    Dense MACs are torchprofile's, plus the recurrent layers it does not count right."""
    from torchprofile import profile_macs
    model = _plain_copy(model).cpu().eval()
    example = to_device(example_input, torch.device("cpu"))
    args = example if isinstance(example, tuple) else (example,)
    with warnings.catch_warnings():
        # ops without MACs (indexing, sorting, packing) each raise a "no handler" warning
        warnings.filterwarnings("ignore", message="No handlers found")
        per_op = profile_macs(model, args, reduction=None)
    dense = sum(int(m) for node, m in per_op.items() if node.operator not in RECURRENT_OPS)
    layer_macs: dict[nn.Module, int] = {}

    def hook(module, inputs, output):
        # summed over calls: a layer applied twice in one forward pass (shared weights) costs twice
        if isinstance(module, nn.RNNBase):
            macs = _recurrent_steps(module, inputs) * sum(
                w.numel() for w in _recurrent_weights(module))
        elif isinstance(module, nn.Linear):
            macs = output.numel() // module.out_features * module.weight.numel()
        else:  # convolutions: every output element costs in/groups * kernel MACs
            macs = output.numel() * module.weight[0].numel()
        layer_macs[module] = layer_macs.get(module, 0) + macs
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.RNNBase))]
    try:
        model(*args)
    finally:
        for h in handles:
            h.remove()
    dense += sum(macs for module, macs in layer_macs.items() if isinstance(module, nn.RNNBase))
    names = {m: n for n, m in model.named_modules()}
    return dense, {names[m]: macs for m, macs in layer_macs.items()}, model


def _detach_masked_weights(model: nn.Module) -> None:
    """A masked weight (``weight = weight_orig * weight_mask``, set by the pruning hook at each
    forward) computed with gradients on is not a graph leaf, and deepcopy refuses such tensors.
    Its detached value is the same numbers; the hook recomputes it at the next forward anyway."""
    from torch.nn.utils import prune
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):   # containers included
                value = getattr(module, hook._tensor_name, None)
                if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                    setattr(module, hook._tensor_name, value.detach())


@torch.no_grad()
def _plain_copy(model: nn.Module) -> nn.Module:
    """A deep copy with masks folded in, so profiling sees ordinary weights (the prune hooks would
    otherwise show up as extra multiplications): what ``make_permanent`` of a deep copy gives,
    made without copying ``weight_orig`` and the mask on the way (a deep copy first and folding
    after held three copies of every masked weight at once: 1 GB more at BERT-base size)."""
    from torch.nn.utils import prune
    _detach_masked_weights(model)
    memo: dict[int, torch.Tensor] = {}
    folded = []
    for target in prunable_targets(model):
        if target.is_masked:
            orig = target.raw_weight()
            # the weight the copy holds, under the identity of weight_orig (prune.remove keeps that
            # Parameter object, so anything sharing it sees the folded values in both ways)
            weight = nn.Parameter(orig * target.mask(), requires_grad=orig.requires_grad)
            memo[id(orig)] = weight
            memo[id(target.mask())] = _FOLDED
            memo[id(getattr(target.module, target.param_name))] = weight
            folded.append((target.module, target.param_name))
    clone = copy.deepcopy(model, memo)
    copies = dict(zip(model.modules(), clone.modules()))
    for module, name in folded:   # what prune.remove does, on the copy
        module = copies[module]
        hooks = module._forward_pre_hooks
        for key in [k for k, h in hooks.items()
                    if isinstance(h, prune.BasePruningMethod) and h._tensor_name == name]:
            del hooks[key]
        weight = module._parameters.pop(name + "_orig")
        del module._buffers[name + "_mask"]
        module.__dict__.pop(name, None)
        module.register_parameter(name, weight)
    return clone


# what a plain copy holds for each mask it folds in, until the mask is dropped from it
_FOLDED = torch.empty(0)


def is_image_batch(example) -> bool:
    """A 4-D floating-point tensor (N, C, H, W): what the channels-last layout applies to."""
    return isinstance(example, torch.Tensor) and example.dim() == 4 and example.is_floating_point()


@torch.no_grad()
def measure_latencies(models: list[nn.Module], example_input, runs: int = 50, warmup: int = 10,
                      device: Optional[torch.device] = None,
                      cancel: Optional[CancelToken] = None,
                      channels_last: bool = False) -> list[tuple[float, float]]:
    """(median latency in ms, throughput in samples/s) for each model at the example's batch size.

    The models' timed runs are interleaved (a, b, a, b, ...) so that each sees the same machine:
    on a busy computer, measuring the original now and the pruned model a minute later compares
    the load, not the models.
    """
    device = device or torch.device("cpu")
    example = to_device(example_input, device)
    channels_last = channels_last and is_image_batch(example)
    modes: list[ModelModes] = []
    try:
        plain = [_as_timed(m, device, not channels_last, modes) for m in models]
        if channels_last:
            plain = [m.to(memory_format=torch.channels_last) for m in plain]
            example = example.contiguous(memory_format=torch.channels_last)
        batch = (example[0] if isinstance(example, tuple) else example).shape[0]
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        medians = time_interleaved(plain, example, runs, warmup, sync, cancel)
    finally:
        for recorded in modes:
            recorded.restore()
    return [(m * 1000.0, batch / m) for m in medians]


def _as_timed(model: nn.Module, device: torch.device, as_is: bool,
              modes: list[ModelModes]) -> nn.Module:
    """What is timed for ``model``: the model itself, in eval mode (its modes are recorded in
    ``modes`` to be put back), when ``as_is`` and it runs as plain PyTorch would run it (no prune
    hooks to time, on ``device``); otherwise a plain copy. A copy where none is needed only costs
    memory: 440 MB at BERT-base size, twice over when the original is timed beside the pruned
    model (it is mapped from its file, engine.kept)."""
    from torch.nn.utils import prune
    if as_is and not prune.is_pruned(model) and model_device(model) == device:
        modes.append(ModelModes(model))
        return model.eval()
    return _plain_copy(model).to(device).eval()


class _ChannelsLastInput(nn.Module):
    """A model run in the channels-last layout from an ordinary (NCHW) input: the conversion is
    part of what it costs, as it would be in an application that receives NCHW images."""
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, x):
        return self.model(x.contiguous(memory_format=torch.channels_last))


LAYOUTS = ("NCHW", "channels_last")


@torch.no_grad()
def measure_latencies_fastest_layout(models: list[nn.Module], example_input, runs: int = 50,
                                     warmup: int = 10, device: Optional[torch.device] = None,
                                     cancel: Optional[CancelToken] = None
                                     ) -> list[tuple[float, float, str]]:
    """(median ms, samples/s, layout) for each model in whichever of NCHW and channels-last runs
    it faster. All 2 x N variants are timed in one interleaved run, so each model's two layouts
    and the models themselves see the same machine. Inputs that are not image batches have one
    layout: they are timed as they are (layout "")."""
    if not is_image_batch(example_input):
        return [(ms, rate, "") for ms, rate in measure_latencies(
            models, example_input, runs, warmup, device, cancel)]
    return [fastest_layout(timed) for timed in measure_layouts(models, example_input, runs, warmup,
                                                               device, cancel)]


def measure_layouts(models: list[nn.Module], example_input, runs: int = 50, warmup: int = 10,
                    device: Optional[torch.device] = None, cancel: Optional[CancelToken] = None
                    ) -> list[dict[str, tuple[float, float]]]:
    """Per model, layout -> (median ms, samples/s) for an image batch in NCHW and channels-last,
    all 2 x N variants timed in one interleaved run."""
    variants = [*models, *(_ChannelsLastInput(_plain_copy(m)) for m in models)]
    timed = measure_latencies(variants, example_input, runs, warmup, device, cancel)
    return [{LAYOUTS[0]: timed[i], LAYOUTS[1]: timed[len(models) + i]} for i in range(len(models))]


def fastest_layout(timed: dict[str, tuple[float, float]]) -> tuple[float, float, str]:
    """(ms, samples/s, layout) of the faster layout; NCHW on a tie (no conversion needed)."""
    layout = min(LAYOUTS, key=lambda name: (timed[name][0], LAYOUTS.index(name)))
    return (*timed[layout], layout)


# A latency round (every model once) longer than this keeps the in-pass Stop checks on.
LATENCY_CHECK_INSIDE_S = 0.1


@torch.no_grad()
def time_interleaved(models: list[nn.Module], example, runs: int, warmup: int,
                     sync: Callable[[], None] = lambda: None,
                     cancel: Optional[CancelToken] = None) -> list[float]:
    """Median seconds per forward pass of each model, their timed runs interleaved (a, b, a, b...).
    ``sync`` waits for the device (``torch.cuda.synchronize`` on a GPU) so each time is complete."""
    round_start = time.perf_counter()
    for model in models:
        for _ in range(warmup):
            forward_batch(model, example)
    sync()
    round_s = (time.perf_counter() - round_start) / warmup if warmup else float("inf")
    # Stop is checked between rounds; only where one round is long does it need the in-pass
    # checks (engine.progress.stop_inside_passes), which would otherwise add to what is timed.
    passes = contextlib.nullcontext() if round_s > LATENCY_CHECK_INSIDE_S else without_pass_checks()
    times: list[list[float]] = [[] for _ in models]
    with passes:
        for _ in range(runs):
            if cancel is not None:
                cancel.raise_if_cancelled()
            for model, samples in zip(models, times):
                start = time.perf_counter()
                forward_batch(model, example)
                sync()
                samples.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def measure_latency(model: nn.Module, example_input, runs: int = 50, warmup: int = 10,
                    device: Optional[torch.device] = None,
                    cancel: Optional[CancelToken] = None) -> tuple[float, float]:
    """(median latency in ms, throughput in samples/s) at the example's batch size."""
    return measure_latencies([model], example_input, runs, warmup, device, cancel)[0]


# ---------------------------------------------------------------- comparison table

@dataclass(frozen=True)
class TableRow:
    metric: str
    original: Optional[float]
    pruned: Optional[float]
    ratio: Optional[float]      # original / pruned for costs, pruned / original for quality
    unit: str = ""
    better: str = "lower"       # which direction is an improvement
    note: str = ""


# The note of a row that needs labels in no-data mode; its cells read NO_DATA instead of a number.
NO_DATA = "no data"
NO_DATA_NOTE = "needs labelled data: the model was opened without data"


def cell_text(row: "TableRow", value: Optional[float]) -> str:
    """One cell: "no data" for a row that needs labels in no-data mode, else the formatted value."""
    return NO_DATA if row.note == NO_DATA_NOTE else format_value(value, row.unit)


def comparison_table(original: ModelMetrics, pruned: ModelMetrics) -> list[TableRow]:
    rows: list[TableRow] = []

    unlabelled = not (original.labelled and pruned.labelled)

    def quality(metric, a, b, unit="%", scale=100.0):
        if unlabelled:   # shown, but as "no data" rather than a number
            rows.append(TableRow(metric, None, None, None, unit, "higher", NO_DATA_NOTE))
            return
        if a is None or b is None:
            return
        rows.append(TableRow(metric, a * scale, b * scale, (b / a) if a else None, unit, "higher"))

    def cost(metric, a, b, unit, note=""):
        if a is None or b is None:
            return
        rows.append(TableRow(metric, float(a), float(b), (a / b) if b else None, unit, "lower", note))

    if original.nonfinite or pruned.nonfinite:   # every figure below is then suspect: say so first
        rows.append(TableRow("Non-finite weights (NaN/inf)", float(original.nonfinite),
                             float(pruned.nonfinite), None, "", "lower",
                             "the model has non-finite weights: outputs may be NaN"))
    quality("Accuracy", original.accuracy, pruned.accuracy)
    quality("Macro F1", original.f1, pruned.f1)
    if unlabelled:
        quality("Loss", None, None, "")
    elif original.loss is not None and pruned.loss is not None:
        rows.append(TableRow("Loss", original.loss, pruned.loss,
                             (original.loss / pruned.loss) if pruned.loss else None, "", "lower"))
    cost("Parameters", original.params, pruned.params, "",
         "tensor shapes: only structured removal makes this smaller")
    cost("Non-zero parameters", original.nonzero_params, pruned.nonzero_params, "")
    rows.append(TableRow("Sparsity", original.sparsity * 100, pruned.sparsity * 100, None, "%",
                         "higher"))
    cost("Size (dense file)", original.dense_bytes, pruned.dense_bytes, "bytes",
         "measured: the bytes torch.save writes for the exported .pt state_dict")
    cost("Size (sparse storage)", original.sparse_bytes, pruned.sparse_bytes, "bytes",
         "bitmap of non-zeros + their values (tensor data only, no file container)")
    per_sample = f" for one sample of {pruned.input_note}" if pruned.input_note else ""
    cost("MACs", original.macs, pruned.macs, "",
         f"what dense kernels execute (torchprofile){per_sample}")
    cost("Effective MACs", original.effective_macs, pruned.effective_macs, "",
         f"MACs of non-zero weights plus weight-free operations (BatchNorm, pooling...): "
         f"reachable only with sparse kernels{per_sample}")
    inputs = f", {pruned.input_note}" if pruned.input_note else ""
    layout = f", {pruned.memory_format}" if pruned.memory_format else ""
    if pruned.layout_chosen:
        layout = (f", faster layout: {pruned.memory_format}"
                  if original.memory_format == pruned.memory_format else
                  f", faster layout: original {original.memory_format}, pruned {pruned.memory_format}")
    cost(f"Latency (batch {pruned.latency_batch}{inputs}, {pruned.device}{layout})",
         original.latency_ms, pruned.latency_ms, "ms",
         "measured: warm-up, then median of timed runs")
    cost(f"Latency (batch {pruned.latency_batch}, cuda{layout})", original.latency_gpu_ms,
         pruned.latency_gpu_ms, "ms", "measured on the GPU: warm-up, then median of timed runs")
    if original.throughput is not None and pruned.throughput is not None:
        rows.append(TableRow(f"Throughput ({pruned.device})", original.throughput,
                             pruned.throughput, pruned.throughput / original.throughput,
                             "samples/s", "higher"))
    return rows


def summarize_comparison(original: ModelMetrics, pruned: ModelMetrics) -> list[str]:
    """The table's honest reading in a few sentences: what pruning bought and what it did not.

    Fine-grained masks zero weights but keep every tensor's shape, so the non-zero count falls
    while parameters, dense size, dense MACs and (without sparse kernels) latency stay put; the
    summary says so instead of letting a falling non-zero count suggest a faster model.
    """
    lines = []
    if original.accuracy is not None and pruned.accuracy is not None:
        delta = (pruned.accuracy - original.accuracy) * 100
        lines.append(f"Accuracy {original.accuracy:.2%} -> {pruned.accuracy:.2%} "
                     f"({delta:+.2f} points).")
    if pruned.nonzero_params < original.nonzero_params:
        lines.append(f"Non-zero parameters fell {original.nonzero_params / max(1, pruned.nonzero_params):.2f}x "
                     f"({pruned.sparsity:.1%} sparse).")
        if pruned.params == original.params:
            lines.append("Tensor shapes are unchanged: the parameter count, the dense file size and "
                         "the dense MACs stay the same; the savings show in sparse storage and "
                         "effective MACs, which need sparse formats or kernels to become real.")
        else:
            lines.append(f"Structured removal made the model itself smaller: "
                         f"{original.params / max(1, pruned.params):.2f}x fewer parameters.")
    if original.latency_ms is not None and pruned.latency_ms is not None:
        speedup = original.latency_ms / pruned.latency_ms if pruned.latency_ms else 0.0
        if speedup < 1.1 and pruned.params < original.params:
            lines.append(f"Measured latency did not improve meaningfully ({speedup:.2f}x) although "
                         f"the model is smaller: measure at the batch size and on the device it "
                         f"will run on before concluding.")
        elif speedup < 1.1:
            lines.append(f"Measured latency did not improve meaningfully ({speedup:.2f}x): dense "
                         f"kernels do the same work on zeros.")
        else:
            lines.append(f"Measured latency improved {speedup:.2f}x.")
    return lines


def format_value(value: Optional[float], unit: str) -> str:
    """One table cell as people read it: bytes in KB/MB, percentages, ms, millions."""
    if value is None:
        return "-"
    if unit == "bytes":
        for suffix, scale in (("MB", 1e6), ("KB", 1e3)):
            if value >= scale:
                return f"{value / scale:.2f} {suffix}"
        return f"{value:.0f} B"
    if unit == "%":
        return f"{value:.2f}%"
    if unit == "ms":
        return f"{value:.3f} ms"
    if unit == "samples/s":
        return f"{value:.0f}/s"
    if abs(value) >= 1e6:
        return f"{value / 1e6:.3f} M"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4f}"


def format_ratio(ratio: Optional[float]) -> str:
    return "-" if ratio is None else f"{ratio:.2f}x"


def format_table(rows: list[TableRow]) -> str:
    header = ("Metric", "Original", "Pruned", "Ratio")
    body = [(r.metric, cell_text(r, r.original), cell_text(r, r.pruned),
             format_ratio(r.ratio)) for r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in body:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)

"""Structured pruning: channels and filters are physically removed, so the model gets smaller and
cheaper to run, not just sparser.

torch-pruning's dependency graph finds every layer coupled to a channel (the next conv's input, the
BatchNorm between them, residual additions that force blocks to share widths, depthwise groups)
and removes the channel from all of them at once; PruneLab does not hand-write any of that. The
work happens on a copy: the caller's model is never touched, so a failure or a Stop leaves it as
it was.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import nn

from engine.config import StructuredSpec
from engine.metrics import count_macs, forward_batch, model_device, split_batch, to_device
from engine.progress import Cancelled, CancelToken, Progress, ProgressFn, ProgressTracker
from engine.pruning.apply import make_permanent
from engine.pruning.targets import matches
from engine.structured.shapes import LayerWidth, compare_widths, layer_configs


# Architectures the test suite prunes, runs, exports and rebuilds on every run. Others may work
# (torch-pruning traces most CNNs); a failure gets a clear StructuredError, never a broken model.
TESTED_ARCHITECTURES = ("lenet", "resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
                        "vgg16_bn", "efficientnet_b0", "regnet_y_400mf")

# Tooltip text for the importance choices (StructuredSpec.importance).
IMPORTANCE_HELP = {
    "l1": "L1 norm of every weight a channel touches (its filter and the next layers' inputs)",
    "l2": "L2 norm of every weight a channel touches; penalises single large weights more than L1",
    "taylor": "|weight x gradient| on a few training batches: the loss change removing it would cause",
    "bn": "the BatchNorm scale (gamma) after the channel; needs BatchNorm layers",
}


class StructuredError(ValueError):
    """Channel removal cannot be done on this model; the message says why in the user's terms.
    ``retryable``: the library failed part-way, so a group-by-group retry may keep just the
    breaking layers whole; ``cause`` is the library's own first line."""
    retryable: bool = False
    cause: str = ""


@dataclass
class StructuredOutcome:
    """What channel removal did. Everything but ``model`` is plain data for the GUI and reports."""
    model: nn.Module                      # the smaller model (a new object)
    layers: list[LayerWidth]              # every conv/linear/norm layer: width before and after
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    output_shape: tuple[int, ...]         # checked equal to the original model's
    protected: list[str]                  # modules whose output channels were kept
    settings: dict[str, Any] = field(default_factory=dict)
    # layers kept whole because removing their group's channels broke the model: name -> why
    kept_whole: dict[str, str] = field(default_factory=dict)
    # layer -> the indices of its original output channels that were removed (sorted)
    removed_channels: dict[str, list[int]] = field(default_factory=dict)

    @property
    def changed_layers(self) -> list[LayerWidth]:
        return [w for w in self.layers if w.changed]

    @property
    def param_reduction(self) -> float:
        return self.params_before / self.params_after if self.params_after else float("inf")

    @property
    def macs_reduction(self) -> float:
        return self.macs_before / self.macs_after if self.macs_after else float("inf")

    def as_dict(self) -> dict[str, Any]:
        """Everything but the model, as JSON-ready plain data (reports, the GUI's worker signals)."""
        return {"layers": [asdict(w) for w in self.layers], "params_before": self.params_before,
                "params_after": self.params_after, "macs_before": self.macs_before,
                "macs_after": self.macs_after, "output_shape": list(self.output_shape),
                "protected": list(self.protected), "settings": dict(self.settings),
                "kept_whole": dict(self.kept_whole), "removed_channels": dict(self.removed_channels),
                "summary": self.summary}

    @property
    def summary(self) -> str:
        return (f"removed channels in {len(self.changed_layers)} of {len(self.layers)} layers: "
                f"parameters {self.params_before:,} -> {self.params_after:,} "
                f"({self.param_reduction:.2f}x fewer), MACs {self.macs_before:,} -> "
                f"{self.macs_after:,} ({self.macs_reduction:.2f}x fewer)"
                + (f"; kept {len(self.kept_whole)} layer(s) whole whose channels could not be "
                   f"removed consistently (split sizes fixed in forward, a concatenation into a "
                   f"grouped convolution...): {', '.join(self.kept_whole)}"
                   if self.kept_whole else ""))


def _count(model: nn.Module, example) -> tuple[int, int]:
    """(parameters, MACs) counted as the comparison table counts them (torchprofile), so the two
    never disagree."""
    return sum(p.numel() for p in model.parameters()), count_macs(model, example)[0]


def make_importance(name: str):
    import torch_pruning as tp
    if name == "l1":
        return tp.importance.MagnitudeImportance(p=1)
    if name == "l2":
        return tp.importance.MagnitudeImportance(p=2)
    if name == "taylor":
        return tp.importance.TaylorImportance()
    if name == "bn":
        return tp.importance.BNScaleImportance()
    raise StructuredError(f"unknown channel importance '{name}' (use l1, l2, taylor or bn)")


def find_classifier(model: nn.Module, example_input) -> tuple[str, nn.Module]:
    """The last conv/linear layer the forward pass runs: its outputs are the class scores, so its
    output channels must never be removed."""
    order: list[nn.Module] = []
    handles = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
               for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))]
    try:
        with torch.no_grad():
            forward_batch(model, example_input)
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise StructuredError("the model has no convolution or linear layer to remove channels from")
    names = {m: n for n, m in model.named_modules()}
    return names[order[-1]], order[-1]


def check_supported(model: nn.Module, spec: StructuredSpec) -> None:
    """Architectures known to need settings PruneLab does not expose get a message up front."""
    attention = [n for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
    if attention:
        raise StructuredError(
            f"channel removal does not support attention layers (nn.MultiheadAttention at "
            f"{attention[0]}): their heads must be pruned together, which needs per-model settings. "
            f"Use mask pruning for this model.")
    if spec.importance == "bn" and not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                           for m in model.modules()):
        raise StructuredError("'bn' importance ranks channels by their BatchNorm scale, and this "
                              "model has no BatchNorm layer: choose l1, l2 or taylor")


def _protected_modules(model: nn.Module, classifier: str, exclude: Optional[list[str]]) -> list[str]:
    names = [classifier]
    module_names = [n for n, _ in model.named_modules() if n]
    for pattern in exclude or []:
        hits = [n for n in module_names if matches(n, pattern)]
        if not hits:
            raise StructuredError(f"structured.exclude: no module matches '{pattern}'")
        names += [n for n in hits if n not in names]
    return names


def _accumulate_taylor_gradients(model: nn.Module, data, batches: int,
                                 cancel: Optional[CancelToken]) -> None:
    """Taylor importance scores |w * dL/dw|, so it needs gradients of the loss on real data."""
    if data is None:
        raise StructuredError("'taylor' importance needs training data for gradients; choose l1, "
                              "l2 or bn, or load data")
    device = model_device(model)
    model.zero_grad(set_to_none=True)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    for p in frozen:  # every weight needs a gradient to be scored; frozen ones stay frozen after
        p.requires_grad_(True)
    loader = data.loader("train", 32, shuffle=True, seed=0)
    try:
        for i, batch in enumerate(loader):
            if i >= batches:
                break
            if cancel is not None:
                cancel.raise_if_cancelled()
            inputs, labels = split_batch(batch)
            loss = nn.functional.cross_entropy(forward_batch(model, to_device(inputs, device)),
                                               labels.to(device))
            loss.backward()
    finally:
        for p in frozen:
            p.requires_grad_(False)


def _raise_if_stopped(exc: BaseException, cancel: Optional[CancelToken]) -> None:
    """Stop raises :class:`Cancelled` inside torch-pruning's own forward passes (its trace, each
    group's check; engine.progress.stop_inside_passes). Such an error is the user's Stop, not a
    failure of the architecture or of one group: re-raise it as a Stop, before it is reported as
    untraceable or a group is kept whole (and retried) because of it."""
    if isinstance(exc, Cancelled) or (cancel is not None and cancel.cancelled):
        raise Cancelled("stopped by the user") from exc


def _wrap_library_error(exc: Exception, stage: str, retryable: bool = False) -> StructuredError:
    error = StructuredError(
        f"torch-pruning could not {stage} for this architecture ({_first_line(exc)}). Channel "
        "removal needs every layer that shares a channel to be traceable; use mask pruning for "
        "this model.")
    error.retryable = retryable   # worth retrying group by group, keeping breaking layers whole
    error.cause = _first_line(exc)
    return error


@dataclass
class GroupTry:
    """One dependency group as torch-pruning handed it over: the layers whose channels are removed
    together, as plain data (the pre-flight check and the group preview read it)."""
    root: Optional[str]                   # the layer whose output channels the group is built on
    members: list[tuple[str, str]]        # (layer, "out" or "in"): which side of it loses channels
    ops: list[str]                        # every node type in the group, library ops included
    out_channels: dict[str, list[int]]    # layer -> output-channel indices removed (current numbering)
    widths: dict[str, int]                # layer -> its output width before this group
    removed: dict[str, list[int]] = field(default_factory=dict)   # same, in original numbering
    error: str = ""                       # why removing it broke the model, if it did
    # parameters torch-pruning found outside any layer it knows ("owner.attr"): a custom layer's
    loose_parameters: list[str] = field(default_factory=list)

    @classmethod
    def describe(cls, group, names: dict[nn.Module, str]) -> "GroupTry":
        members, ops, out_channels, widths, loose = [], [], {}, {}, []
        for item in group:
            module = item.dep.target.module
            ops.append(type(module).__name__)
            name = names.get(module)
            if name is None:
                if isinstance(module, nn.Parameter):
                    loose += [f"{owner}.{attr}" if owner else attr for m, owner in names.items()
                              for attr, p in m.named_parameters(recurse=False) if p is module]
                continue
            side = "out" if getattr(item.dep.handler, "__name__", "") == "prune_out_channels" else "in"
            if (name, side) not in members:
                members.append((name, side))
            if side == "out" and name not in out_channels:
                out_channels[name] = sorted(int(i) for i in item.idxs)
                widths[name] = _out_width(module)
        return cls(names.get(group[0].dep.target.module), members, ops, out_channels, widths,
                   loose_parameters=sorted(set(loose)))


GroupHook = Callable[[GroupTry], None]


def _out_width(module: nn.Module) -> int:
    for attr in ("out_channels", "out_features", "num_features", "num_channels"):
        if isinstance(getattr(module, attr, None), int):
            return getattr(module, attr)
    weight = getattr(module, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) else 0


# How many layers the fallback may keep whole before it gives up: each costs one more trace.
MAX_KEPT_WHOLE = 32


class _GroupBroke(Exception):
    """Removing one dependency group's channels broke the model (checked only while retrying)."""
    def __init__(self, root: Optional[str], cause: Exception) -> None:
        super().__init__(root)
        self.root = root
        self.cause = cause


def prune_channels(model: nn.Module, example_input, spec: StructuredSpec,
                   progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None,
                   data=None, log=lambda _m: None) -> StructuredOutcome:
    """Returns a copy of ``model`` with channels removed as ``spec`` says; ``model`` is unchanged.

    ``example_input`` is a batch the model takes (it traces the dependency graph and checks the
    result). ``data`` (a :class:`~engine.data.sources.DataBundle`) is needed for Taylor importance.

    Some graphs trace but cannot have every group's channels removed consistently: a split with
    sizes written as constants in ``forward``, a concatenation feeding a grouped convolution. Then
    the run is repeated, checking the model after each group, and the layer at the root of a group
    that breaks it is kept whole (``StructuredOutcome.kept_whole`` says which, and why); the rest
    is pruned as asked.
    """
    spec.validate()
    report = progress or (lambda _p: None)
    report(Progress("Removing channels", 0, 0, "tracing channel dependencies"))
    base = copy.deepcopy(model)
    make_permanent(base)  # fold any masks: the dependency graph must see plain weights
    base.eval()
    device = model_device(base)
    example = to_device(example_input, device)
    check_supported(base, spec)
    with torch.no_grad():
        expected_shape = tuple(forward_batch(base, example).shape)
    classifier, _ = find_classifier(base, example)
    protected = _protected_modules(base, classifier, spec.exclude)
    before_configs = layer_configs(base)
    params_before, macs_before = _count(base, example)

    pruned, kept_whole, removed = remove_with_fallback(base, example, spec, protected,
                                                       expected_shape, progress, cancel, data, log)
    params_after, macs_after = _count(pruned, example)
    return StructuredOutcome(
        model=pruned, layers=compare_widths(before_configs, layer_configs(pruned)),
        params_before=params_before, params_after=params_after,
        macs_before=macs_before, macs_after=macs_after,
        output_shape=expected_shape, protected=protected, kept_whole=kept_whole,
        removed_channels=removed,
        settings={"ratio": spec.ratio, "importance": spec.importance, "scope": spec.scope,
                  "round_to": spec.round_to, "max_layer_ratio": spec.max_layer_ratio,
                  "iterative_steps": spec.iterative_steps})


def remove_with_fallback(base: nn.Module, example, spec: StructuredSpec, protected: list[str],
                         expected_shape: tuple[int, ...], progress: Optional[ProgressFn] = None,
                         cancel: Optional[CancelToken] = None, data=None,
                         log=lambda _m: None, check_each_group: bool = False,
                         on_group: Optional[GroupHook] = None,
                         ) -> tuple[nn.Module, dict[str, str], dict[str, list[int]]]:
    """Removes channels from a copy of ``base`` (already plain: masks folded, in eval mode).

    The first try runs at full speed unless ``check_each_group``; when it breaks the model, the run
    is repeated checking the forward pass after each group, and the root layer of a group that
    breaks it is kept whole (at most MAX_KEPT_WHOLE of them). Returns (the smaller model, kept
    whole: layer -> why, removed: layer -> original output-channel indices removed). ``on_group``
    sees every group of the successful try and every group that broke (see :class:`GroupTry`)."""
    kept_whole: dict[str, str] = {}
    checking = check_each_group
    while True:
        pruned = copy.deepcopy(base)
        tries: list[GroupTry] = []
        try:
            removed = _remove_channels(pruned, example, spec, protected + list(kept_whole),
                                       expected_shape, checking, progress, cancel, data, tries)
            break
        except _GroupBroke as broke:
            if broke.root is None or broke.root in kept_whole or len(kept_whole) >= MAX_KEPT_WHOLE:
                raise _wrap_library_error(broke.cause, "remove channels") from None
            reason = _first_line(broke.cause)
            kept_whole[broke.root] = reason
            if on_group is not None:
                on_group(tries[-1])
            log(f"channel removal: keeping {broke.root} whole ({reason})")
        except StructuredError as failed:
            if checking or not failed.retryable:
                raise
            log(f"channel removal broke the model ({failed.cause}); retrying group by group, "
                f"keeping whole any layer whose channels cannot be removed consistently")
        checking = True
    if on_group is not None:
        for group in tries:
            on_group(group)
    return pruned, kept_whole, removed


def _remove_channels(pruned: nn.Module, example, spec: StructuredSpec, ignored: list[str],
                     expected_shape: tuple[int, ...], check_each_group: bool,
                     progress: Optional[ProgressFn], cancel: Optional[CancelToken], data,
                     tries: list["GroupTry"]) -> dict[str, list[int]]:
    """One try: removes channels from ``pruned`` in place, leaving ``ignored`` modules' output
    channels alone, and appends each group it prunes to ``tries``. With ``check_each_group`` a
    group that breaks the forward pass raises :class:`_GroupBroke` naming its root layer. Returns
    layer -> the original output-channel indices removed."""
    import torch_pruning as tp

    modules = dict(pruned.named_modules())
    names = {m: n for n, m in modules.items()}
    # torch-pruning replaces every pruned parameter by a new one that requires grad; remember which
    # were frozen so fine-tuning afterwards trains what the user meant to train
    frozen = {n for n, p in pruned.named_parameters() if not p.requires_grad}
    try:
        pruner = tp.pruner.MetaPruner(
            pruned, example, importance=make_importance(spec.importance),
            global_pruning=spec.scope == "global", pruning_ratio=spec.ratio,
            max_pruning_ratio=spec.max_layer_ratio if spec.scope == "global" else 1.0,
            iterative_steps=spec.iterative_steps, round_to=spec.round_to,
            ignored_layers=[modules[n] for n in ignored])
    except Exception as exc:
        _raise_if_stopped(exc, cancel)
        raise _wrap_library_error(exc, "trace the channel dependencies") from None

    # each layer's surviving original output channels, to report removed indices in original terms
    surviving: dict[str, list[int]] = {}
    for step in range(spec.iterative_steps):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if spec.importance == "taylor":
            _accumulate_taylor_gradients(pruned, data, spec.taylor_batches, cancel)
        try:
            groups = list(pruner.step(interactive=True))
        except Exception as exc:
            _raise_if_stopped(exc, cancel)
            # step() ranks every group before handing any over, so one group whose channels
            # cannot be ranked (a reshape by a head count, a custom layer) stops them all; name it
            broken = _unrankable_group(pruner, names) if check_each_group else None
            if broken is not None:
                tries.append(broken[0])
                raise _GroupBroke(broken[0].root, broken[1]) from None
            raise _wrap_library_error(exc, "remove channels", retryable=True) from None
        tracker = ProgressTracker("Removing channels", len(groups), progress)
        for i, group in enumerate(groups, 1):
            if cancel is not None:
                cancel.raise_if_cancelled()
            tried = GroupTry.describe(group, names)
            tries.append(tried)
            try:
                group.prune()
                if check_each_group:
                    _check_runs(pruned, example, expected_shape)
            except Exception as exc:
                _raise_if_stopped(exc, cancel)
                tried.error = _first_line(exc)
                if check_each_group:
                    raise _GroupBroke(tried.root, exc) from None
                raise _wrap_library_error(exc, "remove channels", retryable=True) from None
            for layer, idxs in tried.out_channels.items():
                before = surviving.get(layer) or list(range(tried.widths[layer]))
                gone = set(idxs)
                surviving[layer] = [c for i, c in enumerate(before) if i not in gone]
                tried.removed[layer] = sorted(set(before) - set(surviving[layer]))
            tracker.update(i, f"step {step + 1}/{spec.iterative_steps}")
    pruned.zero_grad(set_to_none=True)
    for name, param in pruned.named_parameters():
        if name in frozen:
            param.requires_grad_(False)

    if progress is not None:
        progress(Progress("Removing channels", 0, 0, "checking the smaller model"))
    try:
        _check_runs(pruned, example, expected_shape)
    except Exception as exc:
        _raise_if_stopped(exc, cancel)
        raise _wrap_library_error(exc, "produce a model that still runs", retryable=True) from None
    return {layer: sorted(set(range(_original_width(tries, layer))) - set(kept))
            for layer, kept in surviving.items()}


def in_original_numbering(earlier: "StructuredOutcome", later: "StructuredOutcome") -> dict[str, list[int]]:
    """The channels two removals in a row took, by the first model's channel numbers (``later``
    numbers the channels ``earlier`` left). When ``later`` did not start from ``earlier``'s
    result (a step back in between), its own numbering is all that is known."""
    left = {w.name: w.out_after for w in earlier.layers}
    if any(left.get(w.name, w.out_before) != w.out_before for w in later.layers):
        return dict(later.removed_channels)
    combined = {layer: list(indices) for layer, indices in earlier.removed_channels.items()}
    for layer, indices in later.removed_channels.items():
        gone = set(combined.get(layer, []))
        width = next(w.out_before for w in later.layers if w.name == layer) + len(gone)
        survivors = [c for c in range(width) if c not in gone]
        combined[layer] = sorted(gone | {survivors[i] for i in indices})
    return combined


def _unrankable_group(pruner, names: dict[nn.Module, str]) -> Optional[tuple["GroupTry", Exception]]:
    """The first group whose channel importance cannot be computed, described, and the error."""
    for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                          root_module_types=pruner.root_module_types):
        try:
            pruner.estimate_importance(group)
        except Exception as exc:
            tried = GroupTry.describe(group, names)
            tried.out_channels = {}   # nothing was removed: it broke while ranking
            tried.error = _first_line(exc)
            return tried, exc
    return None


def _original_width(tries: list["GroupTry"], layer: str) -> int:
    """A layer's output width before the first group that touched it."""
    return next(t.widths[layer] for t in tries if layer in t.widths)


def _check_runs(model: nn.Module, example, expected_shape: tuple[int, ...]) -> None:
    with torch.no_grad():
        shape = tuple(forward_batch(model, example).shape)
    if shape != expected_shape:
        raise RuntimeError(f"the model outputs {shape} instead of {expected_shape}")


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__

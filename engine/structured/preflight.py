"""See before you cut: which dependency groups channel removal can shrink, which it must keep
whole and why, and which channels a chosen importance and ratio would remove.

The pre-flight check works on a copy of the model: it traces the dependency graph with
torch-pruning, removes a few channels from every group in turn (the group-by-group fallback of
:func:`engine.structured.remove.remove_with_fallback`, checking the forward pass after each group)
and names, per group, why it broke and what to change. The caller's model is never touched.
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Optional

import torch
from torch import nn

from engine.config import StructuredSpec
from engine.metrics import forward_batch, is_image_batch, model_device, to_device
from engine.progress import CancelToken, Progress, ProgressFn, check_stop
from engine.pruning.apply import make_permanent
from engine.structured.remove import (GroupTry, StructuredError, _protected_modules,
                                      _raise_if_stopped, find_classifier, make_importance,
                                      remove_with_fallback)

# The small removal each group is tried with: enough to remove at least one channel of any group
# that has four or more, small enough that nothing else changes how the graph behaves.
PREFLIGHT_RATIO = 0.25


@dataclass(frozen=True)
class Diagnosis:
    """Why a group's channels could not be removed, recognised from what broke and what the group
    holds; ``hint`` says what to change (``{root}`` is the group's root layer)."""
    key: str
    reason: str
    hint: str
    applies: Callable[["GroupTry", nn.Module], bool]


def _has_op(group: GroupTry, op: str) -> bool:
    return op in group.ops


def _feeds_grouped_conv(group: GroupTry, model: nn.Module) -> bool:
    modules = dict(model.named_modules())
    grouped = any(isinstance(modules.get(name), nn.modules.conv._ConvNd) and modules[name].groups > 1
                  and modules[name].groups != modules[name].in_channels
                  for name, _side in group.members)
    return _has_op(group, "_ConcatOp") and grouped


def _inside_attention(group: GroupTry, model: nn.Module) -> bool:
    heads = [name for name, m in model.named_modules()
             if isinstance(m, nn.MultiheadAttention) or isinstance(getattr(m, "num_heads", None), int)
             or isinstance(getattr(m, "num_attention_heads", None), int)]
    return any(member == h or member.startswith(h + ".") for member, _ in group.members for h in heads)


def custom_layers(group: GroupTry, model: nn.Module) -> list[str]:
    """The group's layers of a type from outside torch that hold parameters of their own: a
    member, or the owner of a parameter torch-pruning found outside any layer it knows."""
    modules = dict(model.named_modules())
    owners = [name.rpartition(".")[0] for name in group.loose_parameters]
    found = []
    for name in [member for member, _ in group.members] + owners:
        module = modules.get(name)
        if (module is not None and name not in found
                and not type(module).__module__.startswith("torch.")
                and any(True for _ in module.parameters(recurse=False))):
            found.append(name)
    return found


def _custom_op(group: GroupTry, model: nn.Module) -> bool:
    return bool(custom_layers(group, model))


# Checked in order; the first that applies names the reason.
DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis("fixed_split", "a split with sizes fixed in forward",
              "compute the split sizes from the tensor (x.chunk(2, dim=1), or sizes from "
              "x.shape[1]) instead of constants, or exclude {root} (structured.exclude)",
              lambda g, _m: _has_op(g, "_SplitOp") or "split" in g.error.lower()),
    Diagnosis("concat_grouped", "a concatenation feeding a grouped convolution",
              "the grouped convolution's groups cut across the concatenated branches: make each "
              "branch a multiple of its group size and use round_to, or exclude {root}",
              _feeds_grouped_conv),
    Diagnosis("attention_heads", "an attention head count stored in an attribute",
              "the head count (num_heads) is fixed at construction and reshapes in forward: prune "
              "whole heads with per-model settings, use mask pruning, or exclude {root}",
              _inside_attention),
    Diagnosis("custom_op", "a custom layer torch-pruning cannot slice",
              "{custom} holds its own parameters and torch-pruning has no rule for its type: "
              "register a pruner for it (torch-pruning's customized_pruners), or exclude {root}",
              _custom_op),
    Diagnosis("other", "removing its channels breaks the forward pass",
              "exclude {root} (structured.exclude), or read the error and make the shapes in "
              "forward follow the tensors", lambda _g, _m: True),
)


@dataclass
class GroupCheck:
    """One dependency group's pre-flight result."""
    root: str
    members: list[str]               # every layer coupled to the root ("name (in)" for input sides)
    channels: int                    # the root's output width
    status: str                      # "prunable", "kept whole" or "protected"
    reason: str = ""
    hint: str = ""
    error: str = ""


@dataclass
class PreflightReport:
    groups: list[GroupCheck]
    seconds: float
    example_shape: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)

    def by_status(self, status: str) -> list[GroupCheck]:
        return [g for g in self.groups if g.status == status]

    @property
    def summary(self) -> str:
        kept = self.by_status("kept whole")
        return (f"pre-flight: {len(self.by_status('prunable'))} group(s) prunable, {len(kept)} kept "
                f"whole, {len(self.by_status('protected'))} protected ({self.seconds:.1f} s)"
                + (": " + "; ".join(f"{g.root}: {g.reason}" for g in kept) if kept else ""))

    def lines(self) -> list[str]:
        """The report as text, one group a line (the CLI prints it)."""
        out = [self.summary]
        for g in self.groups:
            coupled = f" with {', '.join(g.members[1:])}" if len(g.members) > 1 else ""
            out.append(f"  [{g.status}] {g.root} ({g.channels} channels){coupled}"
                       + (f": {g.reason}" if g.reason else ""))
            if g.hint:
                out.append(f"      hint: {g.hint}")
        out += [f"  note: {n}" for n in self.notes]
        return out

    def as_dict(self) -> dict:
        return {"groups": [asdict(g) for g in self.groups], "seconds": self.seconds,
                "summary": self.summary, "notes": list(self.notes)}


def _member_labels(group: GroupTry) -> list[str]:
    return [name if side == "out" else f"{name} (in)" for name, side in group.members]


def diagnose(group: GroupTry, model: nn.Module) -> Diagnosis:
    return next(d for d in DIAGNOSES if d.applies(group, model))


# Channel coupling does not depend on an image's height and width, so the checks run on a
# smaller copy of the example when the model gives the same output shape for it (ResNet-50's
# 37 checked forward passes take a second at 32 x 32, not ten at 224 x 224).
CHECK_SIDE = 32


def _plain_copy(model: nn.Module, example_input):
    """A mask-folded eval copy of the model and the example to trace and check it with."""
    base = copy.deepcopy(model)
    make_permanent(base)
    base.eval()
    example = to_device(example_input, model_device(base))
    if is_image_batch(example) and max(example.shape[2:]) > CHECK_SIDE:
        small = nn.functional.interpolate(example, size=tuple(min(s, CHECK_SIDE)
                                                              for s in example.shape[2:]))
        try:
            with torch.no_grad():
                same = forward_batch(base, small).shape == forward_batch(base, example).shape
        except Exception:   # a model fixed to its input size (a flatten into a linear layer)
            same = False
        if same:
            return base, small
    return base, example


def preflight(model: nn.Module, example_input, spec: Optional[StructuredSpec] = None,
              progress: Optional[ProgressFn] = None, cancel: Optional[CancelToken] = None
              ) -> PreflightReport:
    """Tries a small channel removal on every dependency group of a copy of ``model`` and reports
    each group: prunable, kept whole (why, and what to change) or protected (the classifier, and
    ``spec.exclude``). Raises StructuredError only when the graph cannot be traced at all."""
    started = time.perf_counter()
    spec = spec or StructuredSpec()
    report = progress or (lambda _p: None)
    report(Progress("Pre-flight check", 0, 0, "tracing channel dependencies"))
    base, example = _plain_copy(model, example_input)
    with torch.no_grad():
        expected_shape = tuple(forward_batch(base, example).shape)
    classifier, _ = find_classifier(base, example)
    protected = _protected_modules(base, classifier, spec.exclude)
    notes = []
    attention = [n for n, m in base.named_modules() if isinstance(m, nn.MultiheadAttention)]
    if attention:
        notes.append("nn.MultiheadAttention layers keep their width: their heads must be pruned "
                     "together, which needs per-model settings (" + ", ".join(attention) + ")")
    trial = replace(spec, ratio=PREFLIGHT_RATIO, importance="l1", scope="uniform", round_to=None,
                    iterative_steps=1)
    tried: list[GroupTry] = []
    remove_with_fallback(base, example, trial, protected + attention, expected_shape,
                         _relabelled(progress), cancel, check_each_group=True,
                         on_group=tried.append)
    check_stop(cancel)   # a Stop during the last group's check: the report is not wanted now
    modules = dict(base.named_modules())
    groups = []
    for group in tried:
        if group.error:
            d = diagnose(group, base)
            groups.append(GroupCheck(group.root or "?", _member_labels(group),
                                     group.widths.get(group.root, 0), "kept whole", d.reason,
                                     d.hint.format(root=group.root, custom=", ".join(
                                         custom_layers(group, base)) or "a layer"),
                                     group.error))
        else:
            groups.append(GroupCheck(group.root or "?", _member_labels(group),
                                     group.widths.get(group.root, 0), "prunable"))
    for name in protected:
        why = ("the classifier: its outputs are the class scores" if name == classifier
               else "excluded by structured.exclude")
        groups.append(GroupCheck(name, [name], _width(modules[name]), "protected", why))
    return PreflightReport(groups, time.perf_counter() - started, tuple(getattr(example, "shape", ())),
                           notes)


def _width(module: nn.Module) -> int:
    from engine.structured.remove import _out_width
    return _out_width(module)


def _relabelled(progress: Optional[ProgressFn]) -> Optional[ProgressFn]:
    """The fallback reports as "Removing channels"; here it is the check."""
    if progress is None:
        return None
    return lambda p: progress(replace(p, stage="Pre-flight check"))


# ---------------------------------------------------------------- group preview

@dataclass
class GroupPlan:
    """What one group would lose under the chosen importance and ratio, before anything changes."""
    root: str
    members: list[tuple[str, str]]          # (layer, "out"/"in")
    remove: dict[str, list[int]]            # layer -> output-channel indices that would go
    widths: dict[str, int]

    def coupled(self) -> list[str]:
        return [name for name, _ in self.members]


def plan_groups(model: nn.Module, example_input, spec: StructuredSpec, data=None,
                cancel: Optional[CancelToken] = None) -> list[GroupPlan]:
    """Every dependency group with the channels ``spec`` would remove from it, computed on a copy
    without removing anything (the first step's view: ``iterative_steps`` re-ranks after each
    step). Taylor importance needs ``data`` for its gradients, as the removal itself does."""
    import torch_pruning as tp
    from engine.structured.remove import _accumulate_taylor_gradients
    spec.validate()
    base, example = _plain_copy(model, example_input)
    if spec.importance == "taylor":
        _accumulate_taylor_gradients(base, data, spec.taylor_batches, cancel)
    classifier, _ = find_classifier(base, example)
    protected = _protected_modules(base, classifier, spec.exclude)
    modules = dict(base.named_modules())
    names = {m: n for n, m in modules.items()}
    try:
        pruner = tp.pruner.MetaPruner(
            base, example, importance=make_importance(spec.importance),
            global_pruning=spec.scope == "global", pruning_ratio=spec.ratio,
            max_pruning_ratio=spec.max_layer_ratio if spec.scope == "global" else 1.0,
            round_to=spec.round_to, ignored_layers=[modules[n] for n in protected])
        groups = [GroupTry.describe(g, names) for g in pruner.step(interactive=True)]
    except Exception as exc:
        _raise_if_stopped(exc, cancel)
        raise StructuredError(f"torch-pruning could not trace the channel dependencies "
                              f"({type(exc).__name__}: {str(exc)[:160]})") from None
    return [GroupPlan(g.root or "?", g.members, g.out_channels, g.widths) for g in groups]


def group_of(plans: list[GroupPlan], layer: str) -> Optional[GroupPlan]:
    """The group whose channels ``layer``'s output (or, failing that, input) belongs to."""
    for side in ("out", "in"):
        for plan in plans:
            if (layer, side) in plan.members:
                return plan
    return None

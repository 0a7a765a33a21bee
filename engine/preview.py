"""Instant size and compute preview: what a prune would leave, predicted from shapes while the user
edits the settings, without pruning anything.

Everything costly happens once in :meth:`SizePreview.build`: one traced forward (torchprofile's
per-op MACs, in execution order), every tensor's size and non-zero count, and, for channel removal,
torch-pruning's dependency groups. A prediction is then arithmetic over those records (well under a
millisecond for ResNet-50), so a slider can ask for one on every move.

- Mask pruning keeps every shape: parameters, dense size and dense MACs stay; non-zero parameters,
  sparse storage and effective MACs follow from how many weights (or groups) each layer prunes,
  which the settings fix exactly for local and per-layer sparsity. Global scope decides the split
  between layers from the weights' scores: for magnitude criteria one global threshold over the
  sorted magnitudes gives it exactly; for the others per-layer figures assume each layer prunes
  the global fraction (the prediction says so).
- Channel removal: each dependency group loses the channels torch-pruning's uniform rule removes
  (the same arithmetic as its MetaPruner), and the kept fraction of channels is carried through
  the traced graph, so every conv/linear layer's MACs scale by its kept output and input fractions,
  and norms, pools and means by their tensor's. Global scope ranks channels across layers by
  importance; the prediction then assumes the uniform split and says so.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
import torch
from torch import nn

from engine.config import PruneSpec, StructuredSpec
from engine.counting import count_nonzero
from engine.metrics import (RECURRENT_OPS, effective_state, layer_weights, macs_by_layer,
                            storage_bytes, to_device)
import engine.kept
from engine.kept import ArrayFile, meta_copy, release_pages
from engine.progress import CancelToken, check_stop
from engine.pruning.targets import select_targets
from engine.pruning.threshold import count_for_fraction


@dataclass(frozen=True)
class Prediction:
    """Predicted comparison-table figures; ``exact`` is False where the settings leave the split
    between layers to the weights (``note`` says why)."""
    params: int
    nonzero_params: int
    dense_bytes: int
    sparse_bytes: int
    macs: int
    effective_macs: int
    exact: bool = True
    note: str = ""
    seconds: float = 0.0


@dataclass
class _Tensor:
    name: str           # state_dict key (masks folded)
    module: str         # owning module's name
    shape: tuple[int, ...]
    element_size: int
    nonzero: int
    is_parameter: bool

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def sparse_bytes(self, nonzero: int) -> int:
        size = self.numel * self.element_size
        return min(size, (self.numel + 7) // 8 + nonzero * self.element_size)


@dataclass
class _Op:
    """One traced op with MACs, and where its channels come from."""
    macs: int
    output: str                     # the output variable
    inputs: list[str]
    out_channels: int               # dim 1 of the output (0 when it has none)
    module: Optional[str] = None    # the conv/linear/norm layer it is, when it is one
    depthwise: bool = False


# Criteria whose per-weight scores order weights by magnitude: a global split is then predictable.
MAGNITUDE_CRITERIA = ("l1", "l2")

_LAYER_OPS = {"aten::_convolution": (nn.modules.conv._ConvNd,),
              "aten::batch_norm": (nn.modules.batchnorm._BatchNorm,),
              "aten::linear": (nn.Linear,)}


# buckets of sorted magnitudes' int32 bits for the global split: 2**15 of them, each 1/128 of a
# power of two wide (the start positions: 128 KB per layer)
BUCKET_SHIFT = 16
_BUCKETS = 1 << (31 - BUCKET_SHIFT)
_BUCKET_EDGES = np.arange(_BUCKETS, dtype=np.int32) << BUCKET_SHIFT
# a bucket with more magnitudes than this is bisected instead of copied and partitioned
_PARTITION_AT_MOST = 1 << 16


def _folded_keys(state: dict[str, torch.Tensor]) -> list[str]:
    """The keys of ``effective_state`` without computing it: each ``x_orig``/``x_mask`` pair
    is ``x``."""
    out = []
    for key in state:
        base = key[:-len("_mask")]   # "_orig" has the same length
        if key.endswith("_mask") and base + "_orig" in state:
            continue
        out.append(base if key.endswith("_orig") and base + "_mask" in state else key)
    return out


@dataclass
class SizePreview:
    tensors: list[_Tensor]
    dense_macs: int
    layer_macs: dict[str, int]                     # conv/linear/recurrent layer -> MACs
    ops: list[_Op] = field(default_factory=list)   # traced ops in execution order (channel removal)
    var_channels: dict[str, int] = field(default_factory=dict)
    groups: list[tuple[int, int, list[str]]] = field(default_factory=list)  # (width, ch_groups, out layers)
    module_names: list[str] = field(default_factory=list)
    model: Optional[nn.Module] = None              # the plain copy, for target selection
    # what torch.save adds to the tensor bytes (zip records, pickled keys, alignment), measured at
    # build: exact while shapes stay (masks); with channels removed it can differ by the records'
    # 64-byte alignment, under 64 bytes per tensor
    file_overhead: int = 0
    _group_counts: dict = field(default_factory=dict)
    _sorted_magnitudes: dict = field(default_factory=dict)
    _bucket_starts: dict = field(default_factory=dict)   # layer -> where each bucket starts in it
    _summed_starts: tuple = ((), None)   # (layers, their bucket starts added up): the last split's

    # ------------------------------------------------------------ recording

    @classmethod
    def build(cls, model: nn.Module, example_input, channels: bool = True,
              exclude: Optional[list[str]] = None,
              cancel: Optional[CancelToken] = None) -> "SizePreview":
        """Records what predictions need: one traced forward, the tensors, and with ``channels``
        the dependency groups (as channel removal with ``exclude`` would see them). ``cancel``
        is checked between those steps (about a second each at ResNet-50 size)."""
        dense, per_layer, plain = macs_by_layer(model, example_input)
        check_stop(cancel)
        modules = dict(plain.named_modules())
        owners = {}
        for mname, module in modules.items():
            for key in list(module._parameters) + list(module._buffers):
                owners[f"{mname}.{key}" if mname else key] = mname
        parameter_keys = {n for n, _ in plain.named_parameters()}
        tensors = [_Tensor(k, owners.get(k, ""), tuple(t.shape), t.element_size(),
                           count_nonzero(t), k in parameter_keys)
                   for k, t in effective_state(plain).items()]
        preview = cls(tensors, dense, per_layer, module_names=list(modules), model=plain,
                      file_overhead=storage_bytes(plain)[0] - sum(t.numel * t.element_size
                                                                   for t in tensors))
        if channels:
            check_stop(cancel)
            preview._record_graph(plain, example_input)
            check_stop(cancel)
            preview._record_groups(plain, example_input, exclude)
        return preview

    @torch.no_grad()
    def for_weights_of(self, model: nn.Module,
                       cancel: Optional[CancelToken] = None) -> Optional["SizePreview"]:
        """This preview for ``model`` as it is now, when only weights changed since it was built
        (a mask prune, fine-tuning, Back to a masked step): the traced graph, the MACs, the
        dependency groups and the structure depend on shapes alone and are kept, so a new state
        costs counting and sorting the weights of ``model`` itself (no copy of it) instead of a
        traced forward and a dependency graph (1.4 s on ResNet-50, most of it holding the GIL).
        None when any shape or key changed (channel removal): build again."""
        state = model.state_dict()
        if {t.name for t in self.tensors} != set(_folded_keys(state)):
            return None
        tensors = []
        for t in self.tensors:   # effective_state's entries, one at a time
            check_stop(cancel)
            value = (state[t.name] if t.name in state
                     else state[t.name + "_orig"] * state[t.name + "_mask"])
            if tuple(value.shape) != t.shape:
                return None
            tensors.append(replace(t, nonzero=count_nonzero(value)))
        structure = (self.model if all(p.is_meta for p in self.model.parameters())
                     else meta_copy(self.model))
        # a new preview, not the old one updated: the GUI thread may be reading the old one
        preview = replace(self, tensors=tensors, model=structure,
                          _group_counts=dict(self._group_counts), _sorted_magnitudes={},
                          _bucket_starts={}, _summed_starts=((), None))
        preview.sort_magnitudes(cancel=cancel, source=model)
        return preview

    def _record_graph(self, model: nn.Module, example_input) -> None:
        from torchprofile.handlers import HANDLER_MAP
        from torchprofile.trace import trace
        example = to_device(example_input, torch.device("cpu"))
        args = example if isinstance(example, tuple) else (example,)
        order: dict[type, list[str]] = {families: [] for families in _LAYER_OPS.values()}
        names = {m: n for n, m in model.named_modules()}

        def hook(module, _inputs, _output):
            for families in order:
                if isinstance(module, families):
                    order[families].append(names[module])
        handles = [m.register_forward_hook(hook) for m in model.modules()
                   if any(isinstance(m, f) for f in order)]
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore")
                graph = trace(model, args)
        finally:
            for h in handles:
                h.remove()
        queues = {op: list(order[families]) for op, families in _LAYER_OPS.items()}
        modules = dict(model.named_modules())
        for node in graph.nodes:
            handler = HANDLER_MAP.get(node.operator)
            node_macs = int(handler(node)) if handler is not None else 0
            shape = node.outputs[0].shape if node.outputs else None
            channels = shape[1] if shape is not None and len(shape) >= 2 else 0
            for out in node.outputs:
                if out.shape is not None and len(out.shape) >= 2:
                    self.var_channels[out.name] = out.shape[1]
            if node.operator in RECURRENT_OPS:
                continue
            layer = queues[node.operator].pop(0) if queues.get(node.operator) else None
            module = modules.get(layer) if layer else None
            depthwise = isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1 \
                and module.groups == module.in_channels
            self.ops.append(_Op(node_macs, node.outputs[0].name if node.outputs else "",
                                [i.name for i in node.inputs], channels, layer, depthwise))

    def _record_groups(self, model: nn.Module, example_input, exclude) -> None:
        import torch_pruning as tp
        from engine.structured.remove import (GroupTry, _protected_modules, find_classifier,
                                              make_importance)
        example = to_device(example_input, torch.device("cpu"))
        classifier, _ = find_classifier(model, example)
        modules = dict(model.named_modules())
        names = {m: n for n, m in modules.items()}
        ignored = _protected_modules(model, classifier, exclude)
        pruner = tp.pruner.MetaPruner(model, example, importance=make_importance("l1"),
                                      pruning_ratio=0.5, ignored_layers=[modules[n] for n in ignored])
        for group in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                              root_module_types=pruner.root_module_types):
            described = GroupTry.describe(group, names)
            width = described.widths.get(described.root, 0)
            if not width:
                continue
            ch_groups = pruner._get_channel_groups(group) if hasattr(pruner, "_get_channel_groups") else 1
            self.groups.append((width, max(1, int(ch_groups)), [n for n, side in described.members
                                                               if side == "out"]))

    # ------------------------------------------------------------ predicting

    def _totals(self) -> tuple[int, int]:
        return (sum(t.numel for t in self.tensors if t.is_parameter),
                sum(t.numel * t.element_size for t in self.tensors) + self.file_overhead)

    def masks(self, spec: PruneSpec) -> Prediction:
        """What ``spec`` (mask pruning) would leave: shapes unchanged, weights zeroed."""
        from engine.pruning.apply import target_sparsities
        from engine.pruning.base import GRANULARITIES
        started = time.perf_counter()
        granularity = GRANULARITIES.create(spec.granularity, spec.options)
        targets = select_targets(self.model, spec.include, spec.exclude)
        by_name = {t.name: t for t in self.tensors}
        sparsity = ({t.name: granularity.sparsity for t in targets} if granularity.fixed_sparsity
                    else {t.name: spec.sparsity for t in targets} if spec.scope == "global"
                    else target_sparsities(targets, spec))
        nonzero = {t.name: t.nonzero for t in self.tensors}
        for target in targets:
            record = by_name[target.name]
            shape = torch.Size(record.shape)
            groups = self._group_count(granularity, spec, shape) \
                if not granularity.fixed_sparsity else record.numel
            size = record.numel // max(1, groups)
            pruned = count_for_fraction(groups, sparsity[target.name]) * size
            nonzero[target.name] = record.numel - pruned
        exact = spec.scope != "global"
        if spec.scope == "global" and spec.method in MAGNITUDE_CRITERIA \
                and spec.granularity == "fine" and not spec.min_density:
            pruned = self._global_magnitude_split([t.name for t in targets], spec.sparsity)
            for target in targets:
                nonzero[target.name] = by_name[target.name].numel - pruned[target.name]
            exact = True
        elif spec.scope == "global":
            # the total is known; the split between layers would need the criterion's scores
            total = sum(by_name[t.name].numel for t in targets)
            scale = (total - count_for_fraction(total, spec.sparsity)) / max(1, total)
            for target in targets:
                nonzero[target.name] = round(by_name[target.name].numel * scale)
        params, dense_bytes = self._totals()
        effective = self._effective_macs(nonzero, by_name)
        return Prediction(
            params=params, nonzero_params=sum(nonzero[t.name] for t in self.tensors if t.is_parameter),
            dense_bytes=dense_bytes,
            sparse_bytes=sum(t.sparse_bytes(nonzero[t.name]) for t in self.tensors),
            macs=self.dense_macs, effective_macs=effective, exact=exact,
            note="" if exact else "global scope: the split between layers depends on the weights; "
                                  "per-layer figures assume every layer prunes the global fraction",
            seconds=time.perf_counter() - started)

    def _global_magnitude_split(self, names: list[str], sparsity: float) -> dict[str, int]:
        """Per layer, how many weights one global magnitude threshold prunes. Each layer's
        magnitudes are sorted once (``build``), as int32 float bits (non-negative float32 values
        order like their bit patterns), with where each bucket of ``2**BUCKET_SHIFT`` bit
        values starts in it. A prediction adds up the selected layers' bucket starts to find the
        bucket holding the k-th smallest magnitude over all of them, and takes the exact value
        from the magnitudes in that bucket (a partition of their slices; a bisection of the
        bucket's 16 bits when it is crowded, as with the zeros of a pruned model): a few numpy
        calls per layer, where bisecting on all 31 bits took 31 binary searches per layer (1,700
        calls at ResNet-50, run on the window's thread at each slider move). Ties at the
        threshold go in flattened order, as :func:`engine.pruning.threshold.lowest_k_mask` takes
        them."""
        if any(n not in self._sorted_magnitudes for n in names):
            self.sort_magnitudes(names)
        layers = [self._sorted_magnitudes[n] for n in names]
        try:
            return self._split_sorted(names, layers, sparsity)
        finally:
            release_pages(layers)   # what the lookups mapped of a spilled file (engine.kept)

    def _split_sorted(self, names: list[str], layers: list[np.ndarray],
                      sparsity: float) -> dict[str, int]:
        starts = [self._bucket_starts[n] for n in names]
        total = sum(v.size for v in layers)
        k = count_for_fraction(total, sparsity)
        if k <= 0:
            return {n: 0 for n in names}
        key = tuple(names)
        if self._summed_starts[0] != key:   # the same selection again as a slider moves
            counts = np.zeros(_BUCKETS + 1, dtype=np.int64)
            for start in starts:
                counts += start
            self._summed_starts = (key, counts)
        counts = self._summed_starts[1]
        # the k-th smallest is in bucket b: counts[b] < k <= counts[b + 1]
        bucket = int(np.searchsorted(counts, k, side="left")) - 1
        slices = [v[s[bucket]:s[bucket + 1]] for v, s in zip(layers, starts)]
        rank = k - int(counts[bucket]) - 1   # of the threshold among the bucket's magnitudes
        if counts[bucket + 1] - counts[bucket] <= _PARTITION_AT_MOST:
            threshold = np.partition(np.concatenate(slices), rank)[rank]
        else:   # a crowded bucket (after pruning, half the weights are zeros): bisect its bits
            lo, hi = bucket << BUCKET_SHIFT, ((bucket + 1) << BUCKET_SHIFT) - 1
            crowded = [c for c in slices if c.size]
            if sum(int(np.searchsorted(c, np.int32(lo), side="right")) for c in crowded) > rank:
                hi = lo   # the bucket's first value (zero, for the zeros of a pruned model)
            while lo < hi:
                mid = np.int32((lo + hi) // 2)   # an int32 key: a Python int would copy each slice
                if sum(int(np.searchsorted(c, mid, side="right")) for c in crowded) > rank:
                    hi = int(mid)
                else:
                    lo = int(mid) + 1
            threshold = np.int32(lo)
        below = [int(s[bucket]) + int(np.searchsorted(c, threshold, side="left"))
                 for c, s in zip(slices, starts)]
        ties = [int(np.searchsorted(c, threshold, side="right")) + int(s[bucket]) - b
                for c, s, b in zip(slices, starts, below)]
        left = k - sum(below)
        out = {}
        for name, b, t in zip(names, below, ties):
            take = min(t, left)
            left -= take
            out[name] = b + take
        return out

    @torch.no_grad()
    def sort_magnitudes(self, names: Optional[list[str]] = None,
                        cancel: Optional[CancelToken] = None,
                        source: Optional[nn.Module] = None) -> None:
        """Sorts the magnitudes of ``names`` (default: every prunable weight) of ``source`` (the
        model this preview is of; default the preview's own copy) once, as int32 float bits,
        with numpy (some twenty times faster than torch on one CPU thread), one layer at a time;
        above ``engine.kept.SPILL_BYTES`` in all they are kept in a file, mapped back read-only.
        The worker calls it after ``build`` so the first global-scope preview answers at once."""
        weights = {t.name: t for t in select_targets(source or self.model, None, None)}
        todo = [n for n in (weights if names is None else names)
                if n not in self._sorted_magnitudes and n in weights]
        # at full size they go to a file and are mapped back: a prediction reads a few pages
        spill = (ArrayFile() if 4 * sum(weights[n].raw_weight().numel() for n in todo)
                 >= engine.kept.SPILL_BYTES else None)
        for name in todo:
            check_stop(cancel)
            weight = weights[name].weight().detach()
            values = np.sort(weight.abs().float().reshape(-1).cpu().numpy()).view(np.int32)
            starts = np.empty(_BUCKETS + 1, dtype=np.uint32)
            starts[:-1] = np.searchsorted(values, _BUCKET_EDGES, side="left")
            starts[-1] = values.size
            self._bucket_starts[name] = starts
            if spill is not None:
                spill.append(name, values)
            else:
                self._sorted_magnitudes[name] = values
        if spill is not None:
            self._sorted_magnitudes.update(spill.mapped())

    def release_weights(self) -> None:
        """Drops the copy's weights once every prunable weight's magnitudes are sorted: the
        predictions need its structure (names, shapes) only, and a held copy of ResNet-50's
        weights is 100 MB the window would keep for nothing."""
        self.sort_magnitudes()
        self.model = self.model.to("meta")

    def _group_count(self, granularity, spec: PruneSpec, shape: torch.Size) -> int:
        """How many groups the granularity makes of a weight of this shape (cached: a slider
        asks again and again)."""
        key = (spec.granularity, tuple(sorted(spec.options.items())), tuple(shape))
        if key not in self._group_counts:
            self._group_counts[key] = granularity.group_scores(torch.zeros(shape)).numel()
        return self._group_counts[key]

    def _effective_macs(self, nonzero: dict[str, int], by_name: dict[str, _Tensor]) -> int:
        modules = dict(self.model.named_modules())
        saved = 0.0
        for layer, macs in self.layer_macs.items():
            keys = [f"{layer}.{n}" for n, p in modules[layer].named_parameters(recurse=False)
                    if any(p is w for w in layer_weights(modules[layer]))]
            total = sum(by_name[k].numel for k in keys)
            kept = sum(nonzero[k] for k in keys)
            saved += macs * (1.0 - kept / max(1, total))
        return max(0, int(round(self.dense_macs - saved)))

    def channels(self, spec: StructuredSpec) -> Prediction:
        """What removing channels as ``spec`` says would leave (a smaller dense model)."""
        started = time.perf_counter()
        if not self.ops and self.dense_macs:
            raise ValueError("this preview was built without the channel graph (channels=False)")
        kept_out: dict[str, float] = {}      # layer -> kept fraction of its output channels
        for width, ch_groups, layers in self.groups:
            per = width // ch_groups
            removed = per - int(per * (1 - spec.ratio))
            if spec.round_to and removed > 0:
                removed = max(0, width - ((width - removed) - (width - removed) % spec.round_to))
            if removed * ch_groups >= width or width == 1:
                removed = 0     # torch-pruning never empties a layer; nor splits a 1-wide one
            fraction = (width - removed * ch_groups) / width
            for layer in layers:
                kept_out.setdefault(layer, fraction)
        kept_var: dict[str, float] = {}
        in_fraction: dict[str, float] = {}
        macs = 0.0
        for op in self.ops:
            ins = [v for v in op.inputs if v in self.var_channels]
            incoming = kept_var.get(ins[0], 1.0) if ins else 1.0
            if op.module is not None:
                out = kept_out.get(op.module, 1.0)
                in_fraction[op.module] = incoming
                is_norm = op.module not in self.layer_macs
                macs += op.macs * out * (1.0 if (op.depthwise or is_norm) else incoming)
            elif op.out_channels and len(ins) > 1 and all(self.var_channels[v] for v in ins) \
                    and sum(self.var_channels[v] for v in ins) == op.out_channels:
                out = sum(kept_var.get(v, 1.0) * self.var_channels[v] for v in ins) / op.out_channels
                macs += op.macs * out      # a concatenation: its parts' kept channels
            else:
                out = incoming
                macs += op.macs * out
            kept_var[op.output] = out
        params = nonzero = dense_bytes = sparse_bytes = 0
        modules = dict(self.model.named_modules())
        for t in self.tensors:
            scale = 1.0
            module = modules.get(t.module)
            out = kept_out.get(t.module, 1.0)
            if t.shape and module is not None and t.shape[0] == _out_width(module):
                scale *= out
            if len(t.shape) >= 2 and t.name.endswith("weight") and isinstance(
                    module, (nn.modules.conv._ConvNd, nn.Linear)) and not (
                    isinstance(module, nn.modules.conv._ConvNd) and module.groups > 1
                    and module.groups == module.in_channels):
                scale *= in_fraction.get(t.module, 1.0)
            numel = int(round(t.numel * scale))
            kept_nonzero = int(round(t.nonzero * scale))
            if t.is_parameter:
                params += numel
                nonzero += kept_nonzero
            dense_bytes += numel * t.element_size
            sparse_bytes += min(numel * t.element_size, (numel + 7) // 8 + kept_nonzero * t.element_size)
        dense_bytes += self.file_overhead   # the same container; its 64-byte alignment may differ
        exact = spec.scope == "uniform" and spec.iterative_steps == 1
        dense_macs = int(round(macs))
        # zeros already in the weights (an earlier mask) stay zeros in the channels kept
        by_name = {t.name: t for t in self.tensors}
        saved = 0.0
        for layer, layer_macs in self.layer_macs.items():
            keys = [k for k in (f"{layer}.weight",) if k in by_name]
            if keys and by_name[keys[0]].numel:
                density = by_name[keys[0]].nonzero / by_name[keys[0]].numel
                saved += layer_macs * kept_out.get(layer, 1.0) * in_fraction.get(layer, 1.0) \
                    * (1.0 - density)
        effective = max(0, int(round(dense_macs - saved)))
        return Prediction(params, nonzero, dense_bytes, sparse_bytes, dense_macs, effective,
                          exact=exact,
                          note="" if exact else "global scope or iterative steps: widths depend on "
                          "the channels' importance; predicted as if every group lost the same "
                          "fraction", seconds=time.perf_counter() - started)


def _out_width(module: nn.Module) -> int:
    from engine.structured.remove import _out_width as width
    return width(module)

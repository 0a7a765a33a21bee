"""Layer shapes as plain data: what the GUI shows as layer widths, and what the shapes JSON records.

Channel removal changes the width attributes of conv, norm and linear layers (and, for a few
architectures, the shape of a bare parameter such as ConvNeXt's layer scale). Recording those
attributes per layer (and every tensor's shape) is enough to rebuild the smaller model from its
stock architecture without pickling any code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from torch import nn

# Per layer family: the attributes channel removal can change (torch-pruning rewrites exactly these).
_WIDTH_ATTRIBUTES: tuple[tuple[type, tuple[str, ...]], ...] = (
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d), ("in_channels", "out_channels", "groups")),
    ((nn.modules.batchnorm._BatchNorm,), ("num_features",)),
    ((nn.Linear,), ("in_features", "out_features")),
    ((nn.LayerNorm,), ("normalized_shape",)),
    ((nn.GroupNorm,), ("num_groups", "num_channels")),
)


def layer_config(module: nn.Module) -> Optional[dict[str, Any]]:
    """The width attributes of a layer channel removal can change, else None. Subclasses count
    (ConvNeXt's LayerNorm2d is a LayerNorm), which is why rebuilding sets attributes in place
    instead of constructing layers."""
    for families, attributes in _WIDTH_ATTRIBUTES:
        if isinstance(module, families):
            config: dict[str, Any] = {"type": type(module).__name__}
            for attr in attributes:
                value = getattr(module, attr)
                config[attr] = list(value) if isinstance(value, tuple) else value
            return config
    return None


def apply_layer_config(module: nn.Module, config: dict[str, Any]) -> None:
    """Sets the recorded width attributes on ``module`` (its tensors are resized separately)."""
    if type(module).__name__ != config.get("type"):
        raise ValueError(f"is a {type(module).__name__}, the record says {config.get('type')}")
    for attr, value in config.items():
        if attr == "type":
            continue
        if not hasattr(module, attr):
            raise ValueError(f"has no attribute '{attr}'")
        current = getattr(module, attr)
        setattr(module, attr, tuple(value) if isinstance(current, tuple) else value)


def layer_configs(model: nn.Module) -> dict[str, dict[str, Any]]:
    return {name: cfg for name, module in model.named_modules()
            if name and (cfg := layer_config(module)) is not None}


@dataclass(frozen=True)
class LayerWidth:
    """One layer's width before and after channel removal (plain data for the GUI's table)."""
    name: str
    kind: str             # Conv2d, Linear, BatchNorm2d, ...
    in_before: int
    in_after: int
    out_before: int
    out_after: int

    @property
    def changed(self) -> bool:
        return (self.in_before, self.out_before) != (self.in_after, self.out_after)

    @property
    def out_kept(self) -> float:
        """Fraction of output channels kept."""
        return self.out_after / self.out_before if self.out_before else 1.0


def _in_out(config: dict[str, Any]) -> tuple[int, int]:
    if "in_channels" in config:
        return config["in_channels"], config["out_channels"]
    if "in_features" in config:
        return config["in_features"], config["out_features"]
    if "num_features" in config:
        return config["num_features"], config["num_features"]
    if "num_channels" in config:
        return config["num_channels"], config["num_channels"]
    width = config["normalized_shape"][-1]  # LayerNorm
    return width, width


def compare_widths(before: dict[str, dict[str, Any]],
                   after: dict[str, dict[str, Any]]) -> list[LayerWidth]:
    """Widths of every layer present in both, in the model's order."""
    rows = []
    for name, cfg in before.items():
        if name not in after:
            continue
        (ib, ob), (ia, oa) = _in_out(cfg), _in_out(after[name])
        rows.append(LayerWidth(name, cfg["type"], ib, ia, ob, oa))
    return rows


def layer_widths(original: nn.Module, current: nn.Module) -> list[LayerWidth]:
    return compare_widths(layer_configs(original), layer_configs(current))

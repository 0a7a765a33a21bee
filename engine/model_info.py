"""A plain description of a model's modules and parameters, for the GUI's model tree.

Built on the thread that owns the model and handed over as plain data, so the GUI never reads a
live tensor. With pruning masks installed the parameter is listed under its plain name
(``weight``, not ``weight_orig``) with the effective (mask-applied) non-zero count.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.counting import count_nonzero


@dataclass(frozen=True)
class ParamInfo:
    name: str            # full dotted name as in a plain state_dict, e.g. "conv1.weight"
    shape: tuple[int, ...]
    numel: int
    nonzero: int
    prunable: bool       # PruneLab prunes parameters with two or more dimensions

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero / self.numel if self.numel else 0.0


@dataclass(frozen=True)
class ModuleInfo:
    name: str            # "" for the root module
    type_name: str
    params: tuple[ParamInfo, ...]  # the module's own parameters, not its children's


@dataclass(frozen=True)
class ModelInfo:
    description: str
    modules: tuple[ModuleInfo, ...]  # in named_modules() order, parents before children

    @property
    def params(self) -> list[ParamInfo]:
        return [p for m in self.modules for p in m.params]

    @property
    def prunable(self) -> list[ParamInfo]:
        return [p for p in self.params if p.prunable]


@torch.no_grad()
def describe_model(model: nn.Module, description: str = "") -> ModelInfo:
    modules = []
    for module_name, module in model.named_modules():
        params = []
        for pname, param in module.named_parameters(recurse=False):
            base = pname[:-5] if pname.endswith("_orig") else pname
            effective = getattr(module, base) if pname.endswith("_orig") else param
            full = f"{module_name}.{base}" if module_name else base
            params.append(ParamInfo(full, tuple(effective.shape), effective.numel(),
                                    count_nonzero(effective), effective.dim() >= 2))
        modules.append(ModuleInfo(module_name, type(module).__name__, tuple(params)))
    return ModelInfo(description, tuple(modules))

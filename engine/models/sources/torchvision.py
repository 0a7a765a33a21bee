"""``torchvision``: an architecture by name, random init or with weights from a local state_dict."""
from __future__ import annotations

from pathlib import Path

from engine.models.sources.base import MODEL_SOURCE_REGISTRY, LoadedModel, ModelSource


@MODEL_SOURCE_REGISTRY.register
class TorchvisionModel(ModelSource):
    name = "torchvision"
    label = "torchvision architecture"
    description = ("A torchvision architecture by name, random init or with weights from a local "
                   "state_dict file.")

    @classmethod
    def load(cls, spec) -> LoadedModel:
        from engine.models.architectures import build_architecture
        from engine.models.checkpoints import half_dtype, load_into, read_state_dict
        model = build_architecture(spec.arch, spec.num_classes, spec.arch_options)
        if not spec.path:
            return LoadedModel(model.eval(), f"{spec.arch} (random init)", None, spec.arch)
        state = read_state_dict(spec.path)
        load_into(model, state, Path(spec.path).name)
        return LoadedModel(model.eval(), f"{spec.arch} with weights from {Path(spec.path).name}",
                           Path(spec.path), spec.arch, dtype=half_dtype(state))

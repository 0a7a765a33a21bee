"""``state_dict``: an architecture by name plus a weights file, loaded as data (weights_only).

Two variants: a channel-pruned export, rebuilt from the layer-shapes JSON given as ``shapes``,
and a PruneLab BiLSTM (``arch`` "bilstm"), whose sizes and vocabulary are in the JSON beside it."""
from __future__ import annotations

from pathlib import Path

from engine.models.sources.base import MODEL_SOURCE_REGISTRY, LoadedModel, ModelSource


@MODEL_SOURCE_REGISTRY.register
class StateDictModel(ModelSource):
    name = "state_dict"
    label = "Architecture + weights file (state_dict)"
    description = ("An architecture by name plus a state_dict file (.pt/.pth/.safetensors). Loaded "
                   "as data (weights_only): safe for untrusted files. Architecture 'bilstm': a "
                   "PruneLab BiLSTM text checkpoint with its .json (vocabulary, sizes) beside it.")
    requires = {"path": "model.path"}
    takes = ("shapes",)

    @classmethod
    def load(cls, spec) -> LoadedModel:
        path = Path(spec.path)
        if spec.arch == "bilstm":
            from engine.models.sources.text_demo import load_bilstm
            return load_bilstm(path, spec, f"BiLSTM from {path.name}")
        if spec.shapes:
            return _load_channel_pruned(spec)
        from engine.models.architectures import build_architecture
        from engine.models.checkpoints import half_dtype, load_into, read_state_dict
        model = build_architecture(spec.arch, spec.num_classes, spec.arch_options)
        state = read_state_dict(path)
        load_into(model, state, path.name)
        return LoadedModel(model.eval(), f"{spec.arch} from {path.name}", path, spec.arch,
                           dtype=half_dtype(state))


def _load_channel_pruned(spec) -> LoadedModel:
    """A channel-pruned export: rebuilt from its layer-shapes JSON, then loaded weights-only."""
    from engine.structured.rebuild import load_structured, read_shapes
    arch = read_shapes(spec.shapes)["arch"]
    model = load_structured(spec.shapes, spec.path)
    return LoadedModel(model, f"{arch} (channel-pruned) from {Path(spec.path).name}",
                       Path(spec.path), arch, companions=(Path(spec.shapes),))

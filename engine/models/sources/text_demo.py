"""``text_demo``: the BiLSTM shipped in resources/, trained on the built-in news texts; and the
BiLSTM checkpoint reader it shares with ``state_dict`` (architecture "bilstm")."""
from __future__ import annotations

from pathlib import Path

from engine.models.sources.base import MODEL_SOURCE_REGISTRY, LoadedModel, ModelSource
from engine.paths import RESOURCES

TEXT_DEMO_CHECKPOINT = RESOURCES / "bilstm_text_demo.pt"


@MODEL_SOURCE_REGISTRY.register
class TextDemoModel(ModelSource):
    name = "text_demo"
    label = "Built-in text demo (BiLSTM)"
    description = ("The built-in BiLSTM trained on the built-in 4-class news texts (use the "
                   "text_demo data).")

    @classmethod
    def load(cls, spec) -> LoadedModel:
        return load_bilstm(TEXT_DEMO_CHECKPOINT, spec, "BiLSTM trained on the built-in text demo")


def load_bilstm(path: Path, spec, description: str) -> LoadedModel:
    """A BiLSTM state_dict plus the JSON beside it (hyper-parameters, vocabulary, class names)."""
    from engine.models.checkpoints import CheckpointError, read_state_dict
    from engine.text.bilstm import build_bilstm, read_sidecar
    if not path.is_file():
        hint = " (make it with python scripts/train_text_demo.py)" if path == TEXT_DEMO_CHECKPOINT else ""
        raise CheckpointError(f"checkpoint not found: {path}{hint}")
    try:
        model, vocab, names = build_bilstm(read_state_dict(path), read_sidecar(path), spec.arch_options)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    return LoadedModel(model, description, path, vocab=vocab, class_names=names)

"""``hf``: a local Hugging Face sequence-classification folder (needs the ``bert`` extra)."""
from __future__ import annotations

from pathlib import Path

from engine.models.sources.base import MODEL_SOURCE_REGISTRY, LoadedModel, ModelSource


@MODEL_SOURCE_REGISTRY.register
class HuggingFaceModel(ModelSource):
    name = "hf"
    label = "Hugging Face model folder"
    description = ("A local Hugging Face sequence-classification folder (config.json, weights, "
                   "tokenizer; needs the 'bert' extra). Loaded as data: no code from the folder "
                   "runs.")
    requires = {"path": "model.path (a local Hugging Face model folder)"}

    @classmethod
    def load(cls, spec) -> LoadedModel:
        from engine.text.bert import load_hf_classifier   # transformers: only when used
        model, tokenizer, names = load_hf_classifier(spec.path)
        return LoadedModel(model, f"{type(model.hf_model).__name__} from {Path(spec.path).name}",
                           Path(spec.path), tokenizer=tokenizer, class_names=names)

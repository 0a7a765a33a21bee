"""``pickle``: a whole pickled model (torch.save(model)); unpickling runs code, so only with
``trust_pickle``."""
from __future__ import annotations

from pathlib import Path

from engine.config import RecipeError
from engine.models.sources.base import MODEL_SOURCE_REGISTRY, LoadedModel, ModelSource


@MODEL_SOURCE_REGISTRY.register
class PickledModel(ModelSource):
    name = "pickle"
    label = "Whole pickled model"
    description = ("A whole pickled model (torch.save(model)). Unpickling runs code from the file: "
                   "you will be asked to confirm you trust it.")
    requires = {"path": "model.path"}

    @classmethod
    def check(cls, spec) -> None:
        if not spec.trust_pickle:
            raise RecipeError("model.source 'pickle' runs code from the file; set "
                              "model.trust_pickle to true only for a file you trust")

    @classmethod
    def load(cls, spec) -> LoadedModel:
        from engine.models.checkpoints import load_pickled_model
        model = load_pickled_model(spec.path, trusted=spec.trust_pickle)
        return LoadedModel(model.eval(), f"pickled model {Path(spec.path).name}", Path(spec.path))

"""Turning a :class:`~engine.config.ModelSpec` into a model: a registry of model sources, one
module each (``model.source`` in a recipe names one). Adding a source is one module here that
registers a :class:`ModelSource` (name, label, description, required fields, ``load``) and one
import line below; the Open model dialog and recipe validation read the registry.

Importing this package is cheap (no torch): each source imports what it needs inside ``load``."""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models.sources.base import MODEL_SOURCE_REGISTRY, LoadedModel, ModelSource
# each registers itself on import; this order is the order the Open model dialog lists them in
from engine.models.sources import demo, torchvision, state_dict, python_file, pickle  # noqa: F401
from engine.models.sources import text_demo, hf  # noqa: F401
from engine.models.sources.demo import DEMO_CHECKPOINT
from engine.models.sources.python_file import build_from_user_file, import_user_file
from engine.models.sources.text_demo import TEXT_DEMO_CHECKPOINT

if TYPE_CHECKING:
    from engine.config import ModelSpec

__all__ = ["DEMO_CHECKPOINT", "MODEL_SOURCE_REGISTRY", "TEXT_DEMO_CHECKPOINT", "LoadedModel",
           "ModelSource", "build_from_user_file", "import_user_file", "load_model"]


def load_model(spec: ModelSpec, seed: int = 0) -> LoadedModel:
    """Builds the model with torch's RNG seeded from ``seed`` (the recipe's), so a randomly
    initialised model, or any random state a user's factory draws, is the same every time it is
    opened with that seed. The caller's RNG state is left as it was."""
    import torch
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)   # construction runs on the CPU
        spec.validate()
        return MODEL_SOURCE_REGISTRY.get(spec.source).load(spec)

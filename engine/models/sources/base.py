"""What a model source is, and the registry of them. Plain Python, no torch: validating a recipe
reads ``requires``/``takes`` from here, and each source imports torch only inside ``load``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from engine.registry import Component, Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

    from engine.config import ModelSpec


@dataclass
class LoadedModel:
    """A model and what the data must agree with: a text model brings its vocabulary (BiLSTM) or
    tokenizer (Hugging Face), so the data is encoded the way the model was trained."""
    model: nn.Module
    description: str
    source_path: Path | None = None
    arch: str | None = None   # the architecture name it can be rebuilt by (None for user code/pickles)
    vocab: Optional[Any] = None          # engine.text.tokenizer.Vocab
    tokenizer: Optional[Any] = None      # a Hugging Face tokenizer
    class_names: Optional[list[str]] = None
    # other files the model was read from (a channel-pruned export's .shapes.json): never overwritten
    companions: tuple[Path, ...] = ()
    # a float16/bfloat16 checkpoint's dtype: the model computes in float32 here, and the export is
    # written back in this dtype (a float32 export would silently double the file)
    dtype: Optional[torch.dtype] = None

    @property
    def source_files(self) -> tuple[Path, ...]:
        """Everything an export must not write over (a folder: nothing inside it)."""
        return tuple(p for p in (self.source_path, *self.companions) if p is not None)


class ModelSource(Component):
    """One way of opening a model (``model.source`` in a recipe).

    ``label`` is what the Open model dialog lists, ``description`` its help text. ``requires``
    maps each spec field the source cannot do without to how the message names it
    ("model.path is required when model.source is 'pickle'"); ``takes`` lists the optional fields
    only some sources read (``weights``, ``shapes``), so a recipe giving one to another source is
    refused rather than ignored. ``load`` imports what it needs (torch, torchvision, transformers)
    itself, so registering a source costs nothing."""
    requires: ClassVar[dict[str, str]] = {}
    takes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check(cls, spec: ModelSpec) -> None:
        """Source-specific validation beyond the required fields; raises RecipeError."""

    @classmethod
    def load(cls, spec: ModelSpec) -> LoadedModel:
        raise NotImplementedError


MODEL_SOURCE_REGISTRY: Registry[ModelSource] = Registry("model source")

"""What a data source is, and the registry of them. Plain Python, no torch: validating a recipe
reads ``requires``/``takes``/``text`` from here, and each source imports torch only in ``load``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Optional

from engine.registry import Component, Registry

if TYPE_CHECKING:
    from engine.config import DataSpec
    from engine.data.bundle import DataBundle

# the optional DataSpec fields each kind of source reads (the Open data dialog shows their rows)
IMAGE_FIELDS = ("image_size", "channels", "mean", "std")
TEXT_FIELDS = ("text_max_len", "example_tokens")
VOCAB_FIELDS = (*TEXT_FIELDS, "vocab_path", "vectors_path", "vocab_min_freq", "vocab_max_size")


class DataSource(Component):
    """One way of opening data (``data.source`` in a recipe).

    ``label`` is what the Open data dialog lists, ``description`` its help text. ``requires`` maps
    each spec field the source cannot do without to how the message names it; ``takes`` lists the
    optional fields it reads (images: size, channels; text: vocabulary ...); ``text``: text data,
    which a text model needs and which may name a vocabulary, vectors or tokenizer. ``load`` gets
    the loaded text model's vocabulary or tokenizer (None for others) and returns the train/test
    bundle; holding out validation and capping evaluation samples are done by ``load_data``."""
    requires: ClassVar[dict[str, str]] = {}
    takes: ClassVar[tuple[str, ...]] = ()
    text: ClassVar[bool] = False

    @classmethod
    def load(cls, spec: DataSpec, vocab: Optional[Any] = None,
             tokenizer: Optional[Any] = None) -> DataBundle:
        raise NotImplementedError


DATA_SOURCE_REGISTRY: Registry[DataSource] = Registry("data source")

# the folder every non-built-in source reads from
ROOT_REQUIRED = {"root": "data.root (a local folder)"}

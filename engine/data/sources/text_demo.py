"""``text_demo``: the built-in 4-class news texts, encoded with the model's vocabulary."""
from __future__ import annotations

from engine.data.sources.base import DATA_SOURCE_REGISTRY, VOCAB_FIELDS, DataSource


@DATA_SOURCE_REGISTRY.register
class TextDemoData(DataSource):
    name = "text_demo"
    label = "Built-in news texts"
    description = "The built-in 4-class news texts (for the text demo model)."
    takes = VOCAB_FIELDS
    text = True

    @classmethod
    def load(cls, spec, vocab=None, tokenizer=None):
        from engine.text.sources import read_text_demo, with_vocabulary
        return with_vocabulary(spec, read_text_demo(), vocab)

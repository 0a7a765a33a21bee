"""``text_csv``: AG_NEWS-format CSV files in a local folder, PruneLab's tokenizer."""
from __future__ import annotations

from engine.data.sources.base import DATA_SOURCE_REGISTRY, ROOT_REQUIRED, VOCAB_FIELDS, DataSource


@DATA_SOURCE_REGISTRY.register
class TextCSVData(DataSource):
    name = "text_csv"
    label = "News CSV (AG_NEWS format)"
    description = "AG_NEWS-format CSV (label 1-based, title, description) in a local folder."
    requires = ROOT_REQUIRED
    takes = VOCAB_FIELDS
    text = True

    @classmethod
    def load(cls, spec, vocab=None, tokenizer=None):
        from engine.text.sources import read_text_folder, with_vocabulary
        return with_vocabulary(spec, read_text_folder(spec, csv=True), vocab)

"""``hf_tsv``: ``text<TAB>label`` files read through a Hugging Face model's tokenizer."""
from __future__ import annotations

from engine.data.sources.base import DATA_SOURCE_REGISTRY, ROOT_REQUIRED, TEXT_FIELDS, DataSource


@DATA_SOURCE_REGISTRY.register
class HuggingFaceTSVData(DataSource):
    name = "hf_tsv"
    label = "Text TSV, Hugging Face tokenizer"
    description = "text<TAB>label files read through a Hugging Face model's tokenizer."
    requires = ROOT_REQUIRED
    takes = (*TEXT_FIELDS, "tokenizer_path")
    text = True

    @classmethod
    def load(cls, spec, vocab=None, tokenizer=None):
        from engine.text.sources import read_text_folder, with_hf_tokenizer
        return with_hf_tokenizer(spec, read_text_folder(spec, csv=False), tokenizer)

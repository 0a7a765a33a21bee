"""Turning a text :class:`~engine.config.DataSpec` into a :class:`TextDataBundle`: reading the
files (the built-in demo, or a folder of CSV/TSV) and encoding them (PruneLab's vocabulary or a
Hugging Face tokenizer). The text data sources in engine/data/sources/ combine the two."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from engine.config import DataSpec
from engine.data.bundle import DataError
from engine.paths import RESOURCES
from engine.text.datasets import (TextDataBundle, TextSamples, read_ag_news_csv, read_split,
                                   read_tsv, vocab_bundle)
from engine.text.tokenizer import Vocab, tokenize

TEXT_DEMO_DIR = RESOURCES / "text_demo"
CSV_SUFFIXES = (".csv",)
TSV_SUFFIXES = (".tsv", ".txt")


@dataclass
class TextFiles:
    """Labelled texts read from files, before encoding."""
    train: TextSamples
    test: TextSamples
    class_names: Optional[list[str]]
    label: str   # what the data is, for the bundle's description


def read_text_demo() -> TextFiles:
    """The built-in 4-class news demo (resources/text_demo, AG_NEWS CSV format)."""
    if not TEXT_DEMO_DIR.is_dir():
        raise DataError(f"the text demo is missing from {TEXT_DEMO_DIR} (make it with "
                        f"python scripts/make_text_demo.py)")
    train, test, class_names = read_split(TEXT_DEMO_DIR, read_ag_news_csv, CSV_SUFFIXES)
    return TextFiles(train, test, class_names,
                     "built-in text demo (4-class news, generated; AG_NEWS CSV format)")


def read_text_folder(spec: DataSpec, csv: bool) -> TextFiles:
    """``spec.root``: AG_NEWS-format CSV (``csv``) or ``text<TAB>label`` TSV files."""
    root = Path(spec.root).expanduser()
    reader, suffixes = (read_ag_news_csv, CSV_SUFFIXES) if csv else (read_tsv, TSV_SUFFIXES)
    train, test, class_names = read_split(root, reader, suffixes)
    return TextFiles(train, test, class_names,
                     f"{'AG_NEWS-format CSV' if csv else 'TSV'} text from {root}")


def with_vocabulary(spec: DataSpec, files: TextFiles, vocab: Optional[Vocab] = None
                    ) -> TextDataBundle:
    """Encoded with PruneLab's tokenizer and ``spec.vocab_path``, else the model's vocabulary
    (``vocab``), else one built from the training split."""
    label = files.label
    if spec.vocab_path:
        try:
            vocab = Vocab.load(spec.vocab_path)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        label += f"; vocabulary from {Path(spec.vocab_path).name}"
    elif vocab is not None:
        label += "; the model's vocabulary"
    else:
        vocab = Vocab.build((tokenize(t) for t in files.train.texts), spec.vocab_min_freq,
                            spec.vocab_max_size)
        label += "; vocabulary built from the training split"
    return vocab_bundle(files.train, files.test, files.class_names, vocab, spec.text_max_len,
                        spec.example_tokens, label)


def with_hf_tokenizer(spec: DataSpec, files: TextFiles, tokenizer: Optional[Any] = None):
    """Encoded with ``spec.tokenizer_path``'s Hugging Face tokenizer, else the model's."""
    from engine.text.bert import hf_bundle, load_hf_tokenizer
    if spec.tokenizer_path:
        tokenizer = load_hf_tokenizer(spec.tokenizer_path)
    if tokenizer is None:
        raise DataError("data.source 'hf_tsv' needs a Hugging Face tokenizer: open a model "
                        "with model.source 'hf' or set data.tokenizer_path to its folder")
    return hf_bundle(files.train, files.test, files.class_names, tokenizer, spec.text_max_len,
                     spec.example_tokens, files.label)


def suggested_data(model_source: str, model_path: Optional[str] = None) -> Optional[DataSpec]:
    """The data a text model is usually opened with, so opening one does not leave the image demo
    selected: the text demo for the demo BiLSTM, a model folder's ``data/`` TSVs for a Hugging Face
    model when it has them (as ``scripts/make_tiny_bert.py`` writes). None when there is no guess."""
    if model_source == "text_demo":
        return DataSpec(source="text_demo")
    if model_source == "hf" and model_path:
        data = Path(model_path).expanduser() / "data"
        if data.is_dir():
            return DataSpec(source="hf_tsv", root=str(data))
    return None

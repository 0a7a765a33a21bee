"""Turning a text :class:`~engine.config.DataSpec` into a :class:`TextDataBundle`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from engine.config import DataSpec
from engine.data.sources import DataError
from engine.paths import RESOURCES
from engine.text.datasets import TextDataBundle, read_ag_news_csv, read_split, read_tsv, vocab_bundle
from engine.text.tokenizer import Vocab, tokenize

TEXT_DEMO_DIR = RESOURCES / "text_demo"
CSV_SUFFIXES = (".csv",)
TSV_SUFFIXES = (".tsv", ".txt")


def load_text_data(spec: DataSpec, vocab: Optional[Vocab] = None,
                   tokenizer: Optional[Any] = None) -> TextDataBundle:
    if spec.source == "text_demo":
        root, reader, suffixes = TEXT_DEMO_DIR, read_ag_news_csv, CSV_SUFFIXES
        label = "built-in text demo (4-class news, generated; AG_NEWS CSV format)"
        if not root.is_dir():
            raise DataError(f"the text demo is missing from {root} (make it with "
                            f"python scripts/make_text_demo.py)")
    else:
        root = Path(spec.root).expanduser()
        csv = spec.source == "text_csv"
        reader = read_ag_news_csv if csv else read_tsv
        suffixes = CSV_SUFFIXES if csv else TSV_SUFFIXES
        label = f"{'AG_NEWS-format CSV' if csv else 'TSV'} text from {root}"
    train, test, class_names = read_split(root, reader, suffixes)

    if spec.source == "hf_tsv":
        from engine.text.bert import hf_bundle, load_hf_tokenizer
        if spec.tokenizer_path:
            tokenizer = load_hf_tokenizer(spec.tokenizer_path)
        if tokenizer is None:
            raise DataError("data.source 'hf_tsv' needs a Hugging Face tokenizer: open a model "
                            "with model.source 'hf' or set data.tokenizer_path to its folder")
        return hf_bundle(train, test, class_names, tokenizer, spec.text_max_len,
                         spec.example_tokens, label)

    if spec.vocab_path:
        try:
            vocab = Vocab.load(spec.vocab_path)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        label += f"; vocabulary from {Path(spec.vocab_path).name}"
    elif vocab is not None:
        label += "; the model's vocabulary"
    else:
        vocab = Vocab.build((tokenize(t) for t in train.texts), spec.vocab_min_freq,
                            spec.vocab_max_size)
        label += "; vocabulary built from the training split"
    return vocab_bundle(train, test, class_names, vocab, spec.text_max_len, spec.example_tokens,
                        label)


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

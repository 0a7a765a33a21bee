"""BERT (or any Hugging Face sequence classifier) from a local model folder -- the optional extra.

Seed 002 prunes a BERT classifier's attention query weights. PruneLab loads such a model from a
folder written by ``save_pretrained`` (``config.json``, ``model.safetensors`` or
``pytorch_model.bin``, tokenizer files) with ``local_files_only=True``: nothing is downloaded and no
code from the folder runs (``trust_remote_code`` stays off; ``.bin`` weights load with
``weights_only``).

:class:`HFSequenceClassifier` makes the model look like every other PruneLab model: ``forward(
input_ids, attention_mask)`` returns logits, and its parameter names are the Hugging Face model's own
(``bert.encoder.layer.0.attention.self.query.weight``), so a pruned export loads straight back into
``AutoModelForSequenceClassification``.

``transformers`` is imported only here, only when a BERT model or data set is opened.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

INSTALL_HINT = ("BERT models need the optional Hugging Face extra: "
                "pip install -e '.[bert]' (installs transformers)")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


class MissingExtraError(ImportError):
    pass


def require_transformers():
    try:
        import transformers
    except ImportError:
        raise MissingExtraError(INSTALL_HINT) from None
    transformers.logging.set_verbosity_error()  # no "some weights were not initialised" noise
    transformers.utils.logging.disable_progress_bar()  # no per-file bars in the CLI's output
    return transformers


def check_model_folder(folder: str | Path) -> Path:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder not found: {folder} (a folder written by "
                                f"save_pretrained; for a tiny test model run "
                                f"python scripts/make_tiny_bert.py)")
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder} has no config.json: not a Hugging Face model folder")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise ValueError(f"{folder} has no weights ({' or '.join(WEIGHT_FILES[:2])})")
    return folder


class HFSequenceClassifier(nn.Module):
    """Wraps a ``*ForSequenceClassification`` model: ``forward(input_ids, attention_mask) -> logits``.

    The wrapped model's top-level children are registered as this module's children, so parameter
    and state_dict names are exactly the Hugging Face ones."""

    def __init__(self, hf_model: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "hf_model", hf_model)  # not a child: its children are ours
        for name, child in hf_model.named_children():
            self.add_module(name, child)
        for name, param in hf_model.named_parameters(recurse=False):
            self.register_parameter(name, param)
        self.num_labels = int(hf_model.config.num_labels)

    @property
    def config(self):
        return self.hf_model.config

    def train(self, mode: bool = True) -> "HFSequenceClassifier":
        super().train(mode)
        self.hf_model.training = mode  # the top-level flag, which some models read
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None
                ) -> torch.Tensor:
        return self.hf_model(input_ids=input_ids, attention_mask=attention_mask,
                             return_dict=True).logits


def load_hf_classifier(folder: str | Path) -> tuple[HFSequenceClassifier, Any, list[str]]:
    """(wrapped model in eval mode, its tokenizer, class names) from a local folder."""
    folder = check_model_folder(folder)
    transformers = require_transformers()
    try:
        hf_model = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"cannot load the model in {folder}: {str(exc).splitlines()[0]}") from None
    tokenizer = load_hf_tokenizer(folder)
    labels = hf_model.config.id2label or {}
    names = [str(labels.get(i, labels.get(str(i), i))) for i in range(hf_model.config.num_labels)]
    return HFSequenceClassifier(hf_model.float()).eval(), tokenizer, names


def load_hf_tokenizer(folder: str | Path):
    transformers = require_transformers()
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"tokenizer folder not found: {folder}")
    try:
        return transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True,
                                                          trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot load a tokenizer from {folder}: "
                         f"{str(exc).splitlines()[0]}") from None


# ---------------------------------------------------------------- data through the model's tokenizer

DEFAULT_MAX_LEN = 512


def hf_bundle(train, test, class_names: Optional[list[str]], tokenizer, max_len: Optional[int],
              example_tokens: Optional[int], description: str):
    """TSV/CSV samples tokenized by the model's own tokenizer: batches are ``(input_ids,
    attention_mask, label)``, padded with the tokenizer's pad id to the batch's longest text."""
    from engine.text.datasets import (EncodedTextDataset, PadCollate, TextDataBundle, count_classes,
                                      representative_length)
    num_classes = count_classes(class_names, train, test)
    model_max = getattr(tokenizer, "model_max_length", None) or DEFAULT_MAX_LEN
    max_len = min(max_len or DEFAULT_MAX_LEN, model_max if model_max < 10**6 else DEFAULT_MAX_LEN)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def encode(texts: list[str]) -> list[torch.Tensor]:
        ids = tokenizer(texts, truncation=True, max_length=max_len)["input_ids"]
        return [torch.tensor(x, dtype=torch.int64) for x in ids]
    train_ids, test_ids = encode(train.texts), encode(test.texts)
    length = min(example_tokens or representative_length(test_ids), max_len)
    row = _example_ids(tokenizer, test.texts, length)[None, :]
    example = (row, torch.ones_like(row))
    description += f", {type(tokenizer).__name__} (max {max_len} tokens)"
    return TextDataBundle(EncodedTextDataset(train_ids, train.labels),
                          EncodedTextDataset(test_ids, test.labels), num_classes,
                          (row.shape[1],), description,
                          class_names or [str(i) for i in range(num_classes)],
                          collate=PadCollate(pad_id, mask=True), example_row=example)


def _example_ids(tokenizer, texts: list[str], length: int) -> torch.Tensor:
    """``length`` token ids of real test text laid end to end, with the model's special tokens (the
    tokenizer adds them and truncates, so this works for any tokenizer)."""
    count = 1
    while True:
        ids = tokenizer(" ".join(texts[:count]), truncation=True, max_length=length)["input_ids"]
        if len(ids) >= length or count >= len(texts):
            return torch.tensor(ids, dtype=torch.int64)
        count *= 2

"""The bidirectional LSTM text classifier of reference seed 000, and its checkpoint sidecar.

embedding (with a padding index) -> multi-layer bidirectional LSTM over packed sequences -> linear
head on the last layer's final forward and backward hidden states, exactly as the seed's ``LSTM``.

A BiLSTM checkpoint is a plain state_dict (``model.pt``); the JSON beside it (``model.json``)
records the hyper-parameters and the vocabulary, without which the embedding rows mean nothing. When
the JSON is missing, the shapes are read from the state_dict itself and the vocabulary must come with
the data (``data.vocab_path``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import nn

from engine.text.tokenizer import Vocab

SIDECAR_FORMAT = "prunelab-text-model-v1"
HYPER_PARAMETERS = ("vocab_size", "emb_dim", "hid_dim", "num_classes", "num_layers", "pad_idx",
                    "dropout")


class BiLSTMClassifier(nn.Module):
    def __init__(self, vocab_size: int, emb_dim: int = 64, hid_dim: int = 64, num_classes: int = 4,
                 num_layers: int = 2, pad_idx: int = 1, dropout: float = 0.5) -> None:
        super().__init__()
        if vocab_size < 2 or not 0 <= pad_idx < vocab_size:
            raise ValueError(f"a BiLSTM needs vocab_size >= 2 and 0 <= pad_idx < vocab_size "
                             f"(got {vocab_size}, {pad_idx})")
        self.hyper_parameters = dict(vocab_size=vocab_size, emb_dim=emb_dim, hid_dim=hid_dim,
                                     num_classes=num_classes, num_layers=num_layers,
                                     pad_idx=pad_idx, dropout=dropout)
        self.embedding = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_idx)
        self.lstm = nn.LSTM(emb_dim, hid_dim, num_layers=num_layers, bidirectional=True,
                            dropout=dropout if num_layers > 1 else 0.0, batch_first=True)
        self.fc = nn.Linear(hid_dim * 2, num_classes)

    def forward(self, text: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(text)
        # pack_padded_sequence wants the lengths on the CPU whatever the model's device
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths.to("cpu"), batch_first=True,
                                                   enforce_sorted=False)
        _, (hn, _) = self.lstm(packed)
        # last layer's final states: hn[-2] forward direction, hn[-1] backward direction
        return self.fc(torch.cat((hn[-2], hn[-1]), dim=1))


def sidecar_path(checkpoint: str | Path) -> Path:
    return Path(checkpoint).with_suffix(".json")


def infer_hyper_parameters(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Vocabulary size, dimensions, layers and classes from a BiLSTM state_dict's shapes."""
    try:
        vocab_size, emb_dim = state["embedding.weight"].shape
        hid_dim = state["lstm.weight_hh_l0"].shape[1]
        num_classes = state["fc.weight"].shape[0]
    except KeyError as exc:
        raise ValueError(f"not a BiLSTM checkpoint: it has no {exc.args[0]}") from None
    num_layers = sum(1 for k in state if k.startswith("lstm.weight_ih_l") and not k.endswith("_reverse"))
    return dict(vocab_size=int(vocab_size), emb_dim=int(emb_dim), hid_dim=int(hid_dim),
                num_classes=int(num_classes), num_layers=num_layers)


def read_sidecar(checkpoint: str | Path) -> Optional[dict[str, Any]]:
    path = sidecar_path(checkpoint)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name} (the model's settings beside the checkpoint) cannot be "
                         f"read: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"{path.name} is not a PruneLab text-model file (format {SIDECAR_FORMAT})")
    return data


def build_bilstm(state: Mapping[str, torch.Tensor], sidecar: Optional[dict[str, Any]],
                 overrides: Optional[Mapping[str, Any]] = None
                 ) -> tuple[BiLSTMClassifier, Optional[Vocab], Optional[list[str]]]:
    """(model with the state loaded, vocabulary, class names) from a state_dict and its sidecar."""
    from engine.models.checkpoints import load_into
    params = infer_hyper_parameters(state)
    vocab = class_names = None
    if sidecar is not None:
        params.update({k: v for k, v in sidecar.get("hyper_parameters", {}).items()
                       if k in HYPER_PARAMETERS})
        if "vocab" in sidecar:
            vocab = Vocab.from_json(sidecar["vocab"], "the model's vocabulary")
            params.setdefault("pad_idx", vocab.pad_index)
        class_names = sidecar.get("class_names")
    params.update(overrides or {})
    unknown = sorted(set(params) - set(HYPER_PARAMETERS))
    if unknown:
        raise ValueError(f"unknown BiLSTM setting(s) {', '.join(unknown)}; known: "
                         f"{', '.join(HYPER_PARAMETERS)}")
    model = BiLSTMClassifier(**params)
    if vocab is not None and len(vocab) != params["vocab_size"]:
        raise ValueError(f"the model's vocabulary lists {len(vocab):,} tokens but its embedding has "
                         f"{params['vocab_size']:,} rows")
    load_into(model, state, "the BiLSTM checkpoint")
    return model.eval(), vocab, class_names


def sidecar_for(model: BiLSTMClassifier, vocab: Vocab, class_names: list[str],
                **extra: Any) -> dict[str, Any]:
    return {"format": SIDECAR_FORMAT, "arch": "bilstm",
            "hyper_parameters": dict(model.hyper_parameters), "vocab": vocab.to_json(),
            "class_names": list(class_names), **extra}

"""A small, documented tokenizer and a vocabulary, so text models need no downloads.

The tokenizer lower-cases and splits text into runs of letters/digits (keeping an inner apostrophe
or hyphen, as in "don't" or "e-mail") and single punctuation marks; whitespace is dropped. It stands
in for seed 000's spaCy tokenizer, which needs a downloaded language model; a fixed regex is also
what makes a saved vocabulary reproducible from the text alone.

:class:`Vocab` maps tokens to indices like torchtext's ``build_vocab_from_iterator``: specials first
(``<unk>`` 0, ``<pad>`` 1, ``<bos>`` 2, ``<eos>`` 3), then tokens by descending frequency (ties in
first-seen order), unknown tokens map to ``<unk>``.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional

TOKENIZER_NAME = "prunelab-regex-v1"
# letters/digits with inner ' or - ; or any single non-space, non-word character (punctuation)
_TOKEN = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*|[^\w\s]")

UNK, PAD, BOS, EOS = "<unk>", "<pad>", "<bos>", "<eos>"
SPECIALS = (UNK, PAD, BOS, EOS)


def tokenize(text: str) -> list[str]:
    """``"Stocks rose 3% in Tokyo's market."`` -> ``['stocks', 'rose', '3', '%', 'in', "tokyo's",
    'market', '.']``"""
    return _TOKEN.findall(text.lower())


class Vocab:
    """Token <-> index. ``vocab[token]`` gives the index (``<unk>``'s for unknown tokens)."""

    def __init__(self, itos: list[str]) -> None:
        if len(set(itos)) != len(itos):
            raise ValueError("a vocabulary cannot list the same token twice")
        if UNK not in itos or PAD not in itos:
            raise ValueError(f"a vocabulary needs the specials {UNK} and {PAD}")
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.unk_index = self.stoi[UNK]
        self.pad_index = self.stoi[PAD]

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], min_freq: int = 1,
              max_size: Optional[int] = None, specials: tuple[str, ...] = SPECIALS) -> "Vocab":
        """Tokens seen at least ``min_freq`` times, most frequent first; ``max_size`` caps the total
        including the specials."""
        if min_freq < 1:
            raise ValueError("min_freq must be at least 1")
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        # Counter.most_common keeps first-seen order among equal counts, so the result is stable
        words = [w for w, c in counts.most_common() if c >= min_freq and w not in specials]
        if max_size is not None:
            if max_size <= len(specials):
                raise ValueError(f"max_size must leave room beyond the {len(specials)} specials")
            words = words[:max_size - len(specials)]
        return cls(list(specials) + words)

    def __len__(self) -> int:
        return len(self.itos)

    def __getitem__(self, token: str) -> int:
        return self.stoi.get(token, self.unk_index)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: list[str]) -> list[int]:
        return [self.stoi.get(t, self.unk_index) for t in tokens]

    def to_json(self) -> dict:
        return {"tokenizer": TOKENIZER_NAME, "itos": self.itos}

    @classmethod
    def from_json(cls, data: dict, where: str = "vocabulary") -> "Vocab":
        itos = data.get("itos") if isinstance(data, dict) else None
        if not isinstance(itos, list) or not all(isinstance(t, str) for t in itos):
            raise ValueError(f"{where} has no token list ('itos')")
        tokenizer = data.get("tokenizer", TOKENIZER_NAME)
        if tokenizer != TOKENIZER_NAME:
            raise ValueError(f"{where} was built with tokenizer '{tokenizer}', not {TOKENIZER_NAME}")
        return cls(itos)

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        """A vocabulary JSON: ``{"itos": [...]}`` on its own or inside a model's sidecar
        (``{"vocab": {"itos": [...]}}``)."""
        path = Path(path).expanduser()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read vocabulary {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path.name} is not valid JSON: {exc.msg}") from None
        if isinstance(data, dict) and "vocab" in data and "itos" not in data:
            data = data["vocab"]
        return cls.from_json(data, path.name)

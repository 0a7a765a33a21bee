"""Word vectors from a local ``.vec`` file (fastText's text format), as seed 000 initialises its
embedding from fastText vectors -- but read from disk, never downloaded.

Format: an optional header line ``<count> <dim>``, then one word per line followed by ``dim``
numbers separated by spaces. Only the words the vocabulary knows are kept, so a large file costs one
pass and little memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from engine.text.tokenizer import Vocab


class VectorsError(ValueError):
    pass


@dataclass(frozen=True)
class VectorFill:
    """What :func:`fill_embedding` did, for the log."""
    found: int
    vocab_size: int
    dim: int
    path: str

    def __str__(self) -> str:
        return (f"initialised {self.found:,} of {self.vocab_size:,} embedding rows from "
                f"{Path(self.path).name} ({self.dim}-d)")


def read_vec(path: str | Path, wanted: Optional[set[str]] = None) -> tuple[int, dict[str, torch.Tensor]]:
    """(dimension, word -> vector) for the words in ``wanted`` (all words when None)."""
    path = Path(path).expanduser()
    vectors: dict[str, torch.Tensor] = {}
    dim: Optional[int] = None
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line_no, line in enumerate(handle, 1):
                parts = line.rstrip().split(" ")
                if line_no == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    dim = int(parts[1])  # header: count dim
                    continue
                if len(parts) < 2:
                    continue
                word, values = parts[0], parts[1:]
                if dim is None:
                    dim = len(values)
                if len(values) != dim:
                    raise VectorsError(f"{path.name} line {line_no}: {len(values)} numbers, "
                                       f"expected {dim}")
                if wanted is not None and word not in wanted and word.lower() not in wanted:
                    continue
                try:
                    vectors[word] = torch.tensor([float(v) for v in values])
                except ValueError:
                    raise VectorsError(f"{path.name} line {line_no}: not a number in the vector") from None
    except OSError as exc:
        raise VectorsError(f"cannot read word vectors {path}: {exc.strerror or exc}") from None
    if dim is None:
        raise VectorsError(f"{path.name} holds no vectors")
    return dim, vectors


def vocab_vectors(vocab: Vocab, path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(a ``[len(vocab), dim]`` matrix, which rows were found): the file's vector for each
    vocabulary token (matched exactly, else case-insensitively; the tokenizer lower-cases), zeros
    for the rest, as torchtext's ``get_vecs_by_tokens`` gives."""
    dim, vectors = read_vec(path, set(vocab.itos))
    lowered: dict[str, torch.Tensor] = {}
    for word, vec in vectors.items():
        lowered.setdefault(word.lower(), vec)
    matrix = torch.zeros(len(vocab), dim)
    found = torch.zeros(len(vocab), dtype=torch.bool)
    for i, token in enumerate(vocab.itos):
        vec = vectors.get(token, lowered.get(token))
        if vec is not None:
            matrix[i] = vec
            found[i] = True
    return matrix, found


@torch.no_grad()
def fill_embedding(embedding: nn.Embedding, vocab: Vocab, path: str | Path) -> VectorFill:
    """Copies the vectors of known words into ``embedding``; other rows keep their values and the
    padding row stays zero."""
    if embedding.num_embeddings != len(vocab):
        raise VectorsError(f"the embedding has {embedding.num_embeddings:,} rows but the vocabulary "
                           f"{len(vocab):,} tokens")
    matrix, found = vocab_vectors(vocab, path)
    if matrix.shape[1] != embedding.embedding_dim:
        raise VectorsError(f"{Path(path).name} has {matrix.shape[1]}-d vectors but the embedding is "
                           f"{embedding.embedding_dim}-d")
    weight = embedding.weight
    weight[found] = matrix[found].to(weight.dtype)
    if embedding.padding_idx is not None:
        weight[embedding.padding_idx] = 0
    return VectorFill(int(found.sum()), len(vocab), matrix.shape[1], str(path))

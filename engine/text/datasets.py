"""Local text-classification files as datasets whose batches are ``(tokens, lengths, label)``.

Formats (nothing is downloaded):

- **AG_NEWS CSV**: ``"label","title","description"`` with 1-based labels, as in AG_NEWS's
  ``train.csv``/``test.csv``; the text is title and description joined by a space.
- **TSV**: ``text<TAB>label`` per line with 0-based integer labels (or class names listed in the
  class file), as in seed 002's ``train.txt``/``test.txt``.

``root`` is a folder with a train file and a test (or dev/valid) file, plus optional class names one
per line in ``classes.txt`` or ``class.txt`` (AG_NEWS and seed 002's names for it); or a single file,
split 80/20 with a fixed seed so the held-out part is the same on every run.

Padding and lengths follow seed 000: each text becomes a 1-D tensor of vocabulary indices, a batch is
padded with ``<pad>`` to its longest text (``batch_first``) and carries the true lengths for
``pack_padded_sequence``. The label comes last, as :func:`engine.metrics.split_batch` expects.
"""
from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from engine.data.sources import DataBundle, DataError
from engine.text.tokenizer import Vocab, tokenize

CLASS_FILES = ("classes.txt", "class.txt")
TRAIN_STEMS = ("train",)
TEST_STEMS = ("test", "dev", "valid", "val")


@dataclass
class TextSamples:
    texts: list[str]
    labels: list[int]
    source: str


# ---------------------------------------------------------------- readers

def read_ag_news_csv(path: Path, class_names: Optional[list[str]] = None) -> TextSamples:
    """Rows ``label, title, description`` (label 1-based). Two-column rows ``label, text`` work too."""
    texts, labels = [], []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for line_no, row in enumerate(csv.reader(handle), 1):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) < 2:
                    raise DataError(f"{path.name} line {line_no}: expected label, title, description")
                label = _parse_label(row[0], line_no, path, class_names, one_based=True)
                # AG_NEWS writes a newline inside a description as a backslash sequence
                text = " ".join(cell.strip() for cell in row[1:]).replace("\\n", " ").replace("\\", " ")
                texts.append(text)
                labels.append(label)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return _non_empty(TextSamples(texts, labels, str(path)), path)


def read_tsv(path: Path, class_names: Optional[list[str]] = None) -> TextSamples:
    """Lines ``text<TAB>label`` (label 0-based, or a class name from the class file)."""
    texts, labels = [], []
    try:
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                if "\t" not in line:
                    raise DataError(f"{path.name} line {line_no}: expected text<TAB>label")
                text, label = line.rsplit("\t", 1)
                labels.append(_parse_label(label, line_no, path, class_names, one_based=False))
                texts.append(text.strip())
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return _non_empty(TextSamples(texts, labels, str(path)), path)


def _parse_label(value: str, line_no: int, path: Path, class_names: Optional[list[str]],
                 one_based: bool) -> int:
    value = value.strip()
    try:
        label = int(value) - (1 if one_based else 0)
    except ValueError:
        if class_names and value in class_names:
            return class_names.index(value)
        raise DataError(f"{path.name} line {line_no}: label '{value}' is not "
                        f"{'a 1-based class number' if one_based else 'a class number'}"
                        + (" or a name in the class file" if class_names else "")) from None
    if label < 0:
        raise DataError(f"{path.name} line {line_no}: label {value} is out of range "
                        f"({'labels start at 1' if one_based else 'labels start at 0'})")
    return label


def _non_empty(samples: TextSamples, path: Path) -> TextSamples:
    if not samples.texts:
        raise DataError(f"{path} holds no samples")
    return samples


def read_class_names(folder: Path) -> Optional[list[str]]:
    for name in CLASS_FILES:
        path = folder / name
        if path.is_file():
            names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            return names or None
    return None


def find_split_files(root: Path, suffixes: Sequence[str]) -> tuple[Path, Optional[Path]]:
    """(train file, test file) in a folder, or (the file, None) when ``root`` is one file."""
    if root.is_file():
        return root, None
    if not root.is_dir():
        raise DataError(f"text data not found: {root}")

    def find(stems):
        return next((root / f"{stem}{suffix}" for stem in stems for suffix in suffixes
                     if (root / f"{stem}{suffix}").is_file()), None)
    train, test = find(TRAIN_STEMS), find(TEST_STEMS)
    if train is None or test is None:
        raise DataError(f"{root} needs a train file and a test file "
                        f"(train{suffixes[0]} and test{suffixes[0]}; dev/valid also count as test)")
    return train, test


def read_split(root: Path, reader: Callable[[Path, Optional[list[str]]], TextSamples],
               suffixes: Sequence[str], seed: int = 0
               ) -> tuple[TextSamples, TextSamples, Optional[list[str]]]:
    train_path, test_path = find_split_files(root, suffixes)
    class_names = read_class_names(train_path.parent)
    train = reader(train_path, class_names)
    if test_path is not None:
        return train, reader(test_path, class_names), class_names
    order = torch.randperm(len(train.texts), generator=torch.Generator().manual_seed(seed)).tolist()
    cut = max(1, int(0.8 * len(order)))
    if cut >= len(order):
        raise DataError(f"{root} has too few samples to hold some out for testing")
    pick = lambda idx: TextSamples([train.texts[i] for i in idx], [train.labels[i] for i in idx],
                                   train.source)
    return pick(order[:cut]), pick(order[cut:]), class_names


def count_classes(class_names: Optional[list[str]], *splits: TextSamples) -> int:
    largest = max(max(s.labels) for s in splits) + 1
    if class_names is not None:
        if largest > len(class_names):
            raise DataError(f"labels go up to {largest - 1} but the class file names only "
                            f"{len(class_names)} classes")
        return len(class_names)
    return largest


# ---------------------------------------------------------------- datasets and batches

class EncodedTextDataset(Dataset):
    """Texts already turned into index tensors; item ``i`` is ``(token_ids, label)``."""

    def __init__(self, ids: list[torch.Tensor], labels: list[int]) -> None:
        self.ids = ids
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.ids[index], self.labels[index]


def encode_texts(texts: list[str], vocab: Vocab, max_len: Optional[int] = None) -> list[torch.Tensor]:
    """Index tensors; an empty text becomes one ``<unk>`` (packed sequences need length >= 1)."""
    out = []
    for text in texts:
        ids = vocab.encode(tokenize(text))[:max_len] or [vocab.unk_index]
        out.append(torch.tensor(ids, dtype=torch.int64))
    return out


@dataclass(frozen=True)
class PadCollate:
    """``[(ids, label), ...]`` -> ``(tokens [B, T] padded with pad_index, lengths [B], labels [B])``.
    With ``mask`` the second tensor is an attention mask ``[B, T]`` instead of the lengths (what a
    transformer takes). A class, not a closure, so loader workers can pickle it."""
    pad_index: int
    mask: bool = False

    def __call__(self, batch):
        ids = [item[0] for item in batch]
        labels = torch.tensor([int(item[1]) for item in batch], dtype=torch.int64)
        tokens = pad_sequence(ids, batch_first=True, padding_value=self.pad_index)
        lengths = torch.tensor([len(x) for x in ids], dtype=torch.int64)
        if self.mask:
            attention = (torch.arange(tokens.shape[1])[None, :] < lengths[:, None]).to(torch.int64)
            return tokens, attention, labels
        return tokens, lengths, labels


def representative_length(ids: list[torch.Tensor], cap: Optional[int] = None) -> int:
    """The median text length of a split (the token count MACs and latency are measured at)."""
    length = max(1, int(round(statistics.median(len(x) for x in ids))))
    return min(length, cap) if cap else length


def token_stream(ids: list[torch.Tensor], length: int) -> torch.Tensor:
    """The first ``length`` tokens of the split's texts laid end to end: real words, no padding."""
    out, have = [], 0
    while have < length:
        for x in ids:
            out.append(x)
            have += len(x)
            if have >= length:
                break
    return torch.cat(out)[:length]


@dataclass
class TextDataBundle(DataBundle):
    """A :class:`DataBundle` whose loaders pad token batches and whose example input is a
    representative token batch ``(tokens, lengths)`` (or ``(input_ids, attention_mask)``) of
    ``example_tokens`` tokens per sample."""
    collate: Optional[PadCollate] = None
    example_row: tuple[torch.Tensor, ...] = field(default_factory=tuple)
    vocab: Optional[Vocab] = None

    @property
    def example_tokens(self) -> int:
        return int(self.example_row[0].shape[1])

    @property
    def input_note(self) -> str:
        return f"{self.example_tokens} tokens"

    def collate_fn(self):
        return self.collate

    def example_input(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        return tuple(t.expand(batch_size, *t.shape[1:]).contiguous() for t in self.example_row)


def vocab_bundle(train: TextSamples, test: TextSamples, class_names: Optional[list[str]],
                 vocab: Vocab, max_len: Optional[int], example_tokens: Optional[int],
                 description: str) -> TextDataBundle:
    """Built-in tokenizer + vocabulary: batches ``(tokens, lengths, label)`` for the BiLSTM."""
    num_classes = count_classes(class_names, train, test)
    train_ids = encode_texts(train.texts, vocab, max_len)
    test_ids = encode_texts(test.texts, vocab, max_len)
    length = example_tokens or representative_length(test_ids, max_len)
    row = token_stream(test_ids, length)[None, :]
    example = (row, torch.tensor([row.shape[1]], dtype=torch.int64))
    known = sum(int((x != vocab.unk_index).sum()) for x in test_ids)
    total = sum(len(x) for x in test_ids)
    description += (f", vocabulary {len(vocab):,} tokens "
                    f"({known / max(total, 1):.1%} of test tokens known)")
    return TextDataBundle(EncodedTextDataset(train_ids, train.labels),
                          EncodedTextDataset(test_ids, test.labels), num_classes,
                          (length,), description, class_names or _default_names(num_classes),
                          collate=PadCollate(vocab.pad_index), example_row=example, vocab=vocab)


def _default_names(num_classes: int) -> list[str]:
    return [str(i) for i in range(num_classes)]

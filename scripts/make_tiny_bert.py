"""Makes a tiny local BERT classifier folder for seed 002's workflow -- no download.

Builds a random ``BertConfig`` model with 12 encoder layers (so there are twelve
``attention.self.query.weight`` tensors, as in BERT-base) but a hidden size of 32, a WordPiece
vocabulary made from the words of PruneLab's text demo, and ``text<TAB>label`` TSV files from the
same demo; optionally trains it briefly so accuracy before and after pruning means something. Writes,
with ``save_pretrained``:

    <out>/config.json, model.safetensors, tokenizer files     (the model folder: model.source "hf")
    <out>/data/train.tsv, test.tsv, class.txt                  (the data: data.source "hf_tsv")

    python scripts/make_tiny_bert.py                    # -> out/tiny_bert, trained 2 epochs
    python scripts/make_tiny_bert.py --epochs 0 --out /tmp/bert   # random weights, seconds

Needs the optional extra: pip install -e '.[bert]'.
"""
from __future__ import annotations

import argparse
import inspect
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.io import atomic_write_text  # noqa: E402
from engine.text.bert import require_transformers  # noqa: E402
from engine.text.datasets import read_ag_news_csv, read_class_names  # noqa: E402
from engine.text.sources import TEXT_DEMO_DIR  # noqa: E402

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# BERT's basic tokenizer splits on whitespace and around every punctuation mark, lower-cased
_BASIC = re.compile(r"\w+|[^\w\s]")


def wordpiece_vocab(texts: list[str]) -> list[str]:
    words = sorted({w for t in texts for w in _BASIC.findall(t.lower())})
    return SPECIAL_TOKENS + words


def _bert_tokenizer(transformers, tokens: list[str]):
    """A WordPiece tokenizer over ``tokens``. transformers 5 takes the vocabulary as a dict;
    earlier versions read a vocab.txt file."""
    cls = transformers.BertTokenizerFast
    if "vocab" in inspect.signature(cls.__init__).parameters:
        return cls(vocab={t: i for i, t in enumerate(tokens)}, do_lower_case=True,
                   model_max_length=128)
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        vocab_file.write_text("\n".join(tokens) + "\n", encoding="utf-8")
        return cls(vocab_file=str(vocab_file), do_lower_case=True, model_max_length=128)


def write_tsv(path: Path, texts: list[str], labels: list[int]) -> None:
    atomic_write_text(path, "".join(f"{t.replace(chr(9), ' ')}\t{y}\n" for t, y in zip(texts, labels)))


def make_tiny_bert(out: Path, train_rows: int = 1200, test_rows: int = 300, epochs: int = 2,
                   seed: int = 0, hidden: int = 32, layers: int = 12, log=print) -> Path:
    transformers = require_transformers()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(seed)
    train = read_ag_news_csv(TEXT_DEMO_DIR / "train.csv")
    test = read_ag_news_csv(TEXT_DEMO_DIR / "test.csv")
    classes = read_class_names(TEXT_DEMO_DIR)
    data = out / "data"
    write_tsv(data / "train.tsv", train.texts[:train_rows], train.labels[:train_rows])
    write_tsv(data / "test.tsv", test.texts[:test_rows], test.labels[:test_rows])
    atomic_write_text(data / "class.txt", "\n".join(classes) + "\n")

    tokenizer = _bert_tokenizer(transformers, wordpiece_vocab(train.texts + test.texts))
    config = transformers.BertConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=2, intermediate_size=hidden * 2, max_position_embeddings=128,
        num_labels=len(classes), id2label=dict(enumerate(classes)),
        label2id={c: i for i, c in enumerate(classes)})
    model = transformers.BertForSequenceClassification(config)
    if epochs:
        _train(model, tokenizer, train.texts[:train_rows], train.labels[:train_rows], epochs, seed, log)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    log(f"wrote a {layers}-layer, {hidden}-wide BERT classifier ({sum(p.numel() for p in model.parameters()):,} "
        f"parameters) and its data to {out}")
    return out


def _train(model, tokenizer, texts, labels, epochs: int, seed: int, log) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(texts), generator=generator).tolist()
        total = 0.0
        for start in range(0, len(order), 32):
            idx = order[start:start + 32]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=64, return_tensors="pt")
            out = model(**batch, labels=torch.tensor([labels[i] for i in idx]))
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
            total += out.loss.item() * len(idx)
        log(f"epoch {epoch}: train loss {total / len(texts):.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "tiny_bert")
    parser.add_argument("--epochs", type=int, default=2, help="brief training; 0 keeps random weights")
    parser.add_argument("--train-rows", type=int, default=1200)
    parser.add_argument("--test-rows", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    make_tiny_bert(args.out, args.train_rows, args.test_rows, args.epochs, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

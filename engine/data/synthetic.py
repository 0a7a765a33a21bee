"""No-data mode: a model opened without any data set, on synthetic inputs of a stated shape.

Everything that needs no labels still works: pruning by weight criteria, channel removal,
histograms, masks, parameters, size, MACs, latency and export all need only the shape of one
input. What needs labels (accuracy, loss, F1, gradient/Taylor/OBD criteria, the sensitivity scan,
fine-tuning) is refused with a message saying so, and the comparison table says "no data".

The inputs are random with a fixed seed, so MACs and latency are the same on every run; token
models get token ids below their vocabulary size with a full attention mask (Hugging Face) or full
lengths (BiLSTM).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch.utils.data import Dataset, TensorDataset

from engine.config import DataSpec
from engine.data.sources import DataBundle, DataError

NO_DATA = "no data"
SYNTHETIC_SEED = 0
# What a row needing labels shows, and why a method needing data is unavailable.
NEEDS_LABELS = "needs labelled data (the model was opened without data)"


def _float_example(shape: tuple[int, ...], vocab_size: Optional[int]) -> torch.Tensor:
    g = torch.Generator().manual_seed(SYNTHETIC_SEED)
    return torch.randn(1, *shape, generator=g)


def _token_ids(shape: tuple[int, ...], vocab_size: Optional[int]) -> torch.Tensor:
    g = torch.Generator().manual_seed(SYNTHETIC_SEED)
    return torch.randint(0, max(1, vocab_size or 2), (1, *shape), generator=g)


def _tokens_with_mask(shape, vocab_size):
    ids = _token_ids(shape, vocab_size)
    return ids, torch.ones_like(ids)


def _tokens_with_lengths(shape, vocab_size):
    ids = _token_ids(shape, vocab_size)
    return ids, torch.tensor([ids.shape[1]], dtype=torch.int64)


# input kind -> builder of one synthetic example (batch 1); DataFit.kind/token_input name them
EXAMPLE_BUILDERS: dict[str, Callable[[tuple[int, ...], Optional[int]], object]] = {
    "image": _float_example,
    "features": _float_example,
    "tokens/mask": _tokens_with_mask,
    "tokens/lengths": _tokens_with_lengths,
}


@dataclass
class SyntheticBundle(DataBundle):
    """Data with no samples: one synthetic example input, no labels. ``train``/``test`` are empty."""
    kind: str = "image"
    vocab_size: Optional[int] = None

    @property
    def has_labels(self) -> bool:
        return False

    def split(self, name: str) -> Dataset:
        raise DataError(f"opened without data: there is no '{name}' split; {NEEDS_LABELS}")

    def example_input(self, batch_size: int = 1):
        example = EXAMPLE_BUILDERS[self.kind](tuple(self.input_shape), self.vocab_size)
        if isinstance(example, tuple):
            return tuple(t.expand(batch_size, *t.shape[1:]).contiguous() for t in example)
        return example.expand(batch_size, *example.shape[1:]).contiguous()

    @property
    def input_note(self) -> str:
        shape = "x".join(str(n) for n in self.input_shape)
        return f"{shape} tokens, synthetic" if self.kind.startswith("tokens") else \
            f"synthetic {shape}"


def synthetic_data(spec: DataSpec, model, loaded=None) -> SyntheticBundle:
    """The no-data bundle for ``model``: ``spec.input_shape`` when given, else the shape inferred
    from the model (engine.models.fit); the class count is what the model outputs."""
    from engine.models.fit import FitError, infer_data_fit
    try:
        fit = infer_data_fit(model, None, getattr(loaded, "tokenizer", None),
                             getattr(loaded, "vocab", None))
    except FitError as exc:
        if not spec.input_shape:
            raise DataError(f"{exc}; give data.input_shape") from None
        fit = None
    shape = tuple(spec.input_shape) if spec.input_shape else fit.input_shape
    if fit is not None and fit.kind == "tokens":
        kind = f"tokens/{fit.token_input}"
    else:
        kind = "image" if len(shape) >= 2 else "features"
    empty = TensorDataset(torch.zeros(0))
    bundle = SyntheticBundle(empty, empty, 0, shape, "", kind=kind,
                             vocab_size=fit.vocab_size if fit is not None else None)
    bundle.num_classes = _output_width(model, bundle)
    bundle.description = (f"no data: synthetic {'x'.join(map(str, shape))} inputs "
                          f"(nothing that needs labels is measured)")
    return bundle


@torch.no_grad()
def _output_width(model, bundle: SyntheticBundle) -> int:
    from engine.metrics import forward_batch, model_device, to_device
    was_training = model.training
    model.eval()
    try:
        out = forward_batch(model, to_device(bundle.example_input(1), model_device(model)))
    except Exception as exc:
        raise DataError(f"the model cannot take synthetic inputs of shape "
                        f"{tuple(bundle.input_shape)}: {str(exc).splitlines()[0]}") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise DataError(f"the model's output has shape {tuple(getattr(out, 'shape', ()))}; "
                        f"PruneLab expects (batch, classes)")
    return int(out.shape[1])

"""Turning a :class:`~engine.config.DataSpec` into train/val/test datasets: a registry of data
sources, one module each (``data.source`` in a recipe names one). Adding a source is one module
here that registers a :class:`DataSource` (name, label, description, required fields, ``load``)
and one import line below; the Open data dialog and recipe validation read the registry.
Nothing is downloaded: MNIST, FashionMNIST and CIFAR-10 are read from a local root in
torchvision's own layout.

Importing this package is cheap (no torch): each source imports what it needs inside ``load``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from engine.data.bundle import DataBundle, DataError, hold_out_validation, sample_subset
from engine.data.sources.base import DATA_SOURCE_REGISTRY, DataSource
# each registers itself on import; this order is the order the Open data dialog lists them in
from engine.data.sources import demo, imagefolder, torchvision_datasets  # noqa: F401
from engine.data.sources import text_demo, text_csv, text_tsv, hf_tsv, none  # noqa: F401
from engine.data.sources.images import DEFAULT_NORMALISATION

if TYPE_CHECKING:
    from engine.config import DataSpec

__all__ = ["DATA_SOURCE_REGISTRY", "DEFAULT_NORMALISATION", "DataBundle", "DataError",
           "DataSource", "hold_out_validation", "load_data", "sample_subset"]


def load_data(spec: DataSpec, vocab: Optional[Any] = None, tokenizer: Optional[Any] = None
              ) -> DataBundle:
    """``vocab``/``tokenizer``: the loaded text model's own (see ``LoadedModel``), used unless the
    spec names one, so text is encoded the way the model was trained."""
    spec.validate()
    bundle = DATA_SOURCE_REGISTRY.get(spec.source).load(spec, vocab, tokenizer)
    hold_out_validation(bundle, spec.val_fraction)
    if spec.max_eval_samples is not None:
        for name in ("val", "test"):
            dataset = getattr(bundle, name)
            if dataset is not None:
                setattr(bundle, name, sample_subset(dataset, spec.max_eval_samples))
    return bundle

"""``none``: no data; the model opens on synthetic inputs (engine.data.synthetic), which are made
from the model, so Session.open builds them rather than this source."""
from __future__ import annotations

from engine.data.bundle import DataError
from engine.data.sources.base import DATA_SOURCE_REGISTRY, DataSource


@DATA_SOURCE_REGISTRY.register
class NoData(DataSource):
    name = "none"
    label = "none"
    description = ("No data: the model opens on synthetic inputs of the shape below. Pruning by "
                   "weights, channel removal, masks, size, MACs, latency and export work; accuracy, "
                   "fine-tuning and data-driven methods need labelled data.")
    takes = ("input_shape",)

    @classmethod
    def load(cls, spec, vocab=None, tokenizer=None):
        raise DataError("data.source 'none' is made from the model (Session.open, or "
                        "engine.data.synthetic.synthetic_data)")

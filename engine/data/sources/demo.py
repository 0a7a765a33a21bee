"""``demo``: the built-in handwritten digits, distorted (see engine.data.distorted_digits)."""
from __future__ import annotations

from engine.data.bundle import DataBundle
from engine.data.sources.base import DATA_SOURCE_REGISTRY, DataSource


@DATA_SOURCE_REGISTRY.register
class DemoDigits(DataSource):
    name = "demo"
    label = "Built-in digits"
    description = "The built-in handwritten digits (1x28x28, 10 classes)."

    @classmethod
    def load(cls, spec, vocab=None, tokenizer=None) -> DataBundle:
        from engine.data.distorted_digits import demo_datasets
        train, test = demo_datasets()
        return DataBundle(train, test, 10, (1, 28, 28),
                          "built-in handwritten digits, distorted (UCI 8x8 upscaled to 28x28; "
                          "warped, cluttered, noisy)",
                          [str(i) for i in range(10)])

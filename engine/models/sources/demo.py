"""``demo``: the LeNet shipped in resources/, trained on the built-in digits."""
from __future__ import annotations

from engine.models.sources.base import MODEL_SOURCE_REGISTRY, LoadedModel, ModelSource
from engine.paths import RESOURCES

DEMO_CHECKPOINT = RESOURCES / "lenet_digits.pt"


@MODEL_SOURCE_REGISTRY.register
class DemoModel(ModelSource):
    name = "demo"
    label = "Built-in demo (LeNet, digits)"
    description = "The built-in LeNet trained on the built-in digits."

    @classmethod
    def load(cls, spec) -> LoadedModel:
        from engine.models.architectures import build_architecture
        from engine.models.checkpoints import load_into, read_state_dict
        model = build_architecture("lenet", 10)
        load_into(model, read_state_dict(DEMO_CHECKPOINT), "the demo checkpoint")
        return LoadedModel(model.eval(), "LeNet trained on the built-in digits", DEMO_CHECKPOINT,
                           "lenet")

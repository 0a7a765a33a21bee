"""Architectures the engine can build by name: PruneLab's own, then every torchvision classifier.

Nothing here downloads: torchvision models are always built with ``weights=None``; trained weights
come from a local file.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from torch import nn

from engine.models.lenet import LeNet
from engine.text.bilstm import BiLSTMClassifier

# PruneLab's own architectures: name -> factory(num_classes, **options). Options come from
# ModelSpec.arch_options (or a checkpoint's sidecar); an architecture without options takes none.
BUILTIN_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "lenet": lambda num_classes: LeNet(num_classes=num_classes),
    # seed 000's text classifier; vocab_size is required (a checkpoint's JSON or shapes give it)
    "bilstm": lambda num_classes, **options: BiLSTMClassifier(num_classes=num_classes, **options),
}


def torchvision_classifiers() -> list[str]:
    import torchvision
    return sorted(torchvision.models.list_models(module=torchvision.models))


def architecture_names() -> list[str]:
    return sorted(BUILTIN_ARCHITECTURES) + torchvision_classifiers()


def build_architecture(name: str, num_classes: int = 10,
                       options: Optional[Mapping[str, Any]] = None) -> nn.Module:
    if name in BUILTIN_ARCHITECTURES:
        try:
            return BUILTIN_ARCHITECTURES[name](num_classes, **dict(options or {}))
        except TypeError as exc:  # a missing or unknown option
            raise ValueError(f"architecture '{name}': {exc}") from None
    if options:
        raise ValueError(f"architecture options are for PruneLab's own architectures, not '{name}'")
    import torchvision
    if name not in torchvision_classifiers():
        raise ValueError(f"unknown architecture '{name}': use one of {', '.join(sorted(BUILTIN_ARCHITECTURES))} "
                         f"or a torchvision classification model such as resnet18, mobilenet_v2, vgg16_bn")
    kwargs = {"weights": None, "num_classes": num_classes}
    if name.startswith("inception") or name.startswith("googlenet"):
        kwargs["aux_logits"] = False
        kwargs["init_weights"] = True
    return torchvision.models.get_model(name, **kwargs)

"""Keeping the garbage collector from freezing the window.

A full (generation-2) collection walks every tracked Python object, and with torch, Qt and a model
loaded that is a few hundred thousand of them: 100-1400 ms (ResNet-50 on a busy 2-core machine)
during which the thread running it holds the GIL, so the window stops repainting whichever
thread triggered the collection. After a model is opened, everything alive is moved out of the
collector's reach with ``gc.freeze()``; later collections then only walk what was made since, and
stay short.

What was frozen before stays frozen: the collection here walks only what was made since the last
freeze (the new model and its views), not the whole heap again, so opening a second big model does
not pay for the first. It is still a full collection, on purpose: that resets the collector's count
of long-lived objects, without which it would run full collections every few hundred allocations
(seen as 700 ms heartbeat gaps while fine-tuning). Frozen objects are still freed by reference
counting as soon as nothing refers to them, which is how a replaced model, its copies and its
tensors go (PruneLab's sessions hold no reference cycles through them); only cyclic garbage among
objects frozen earlier is kept.
"""
from __future__ import annotations

import gc
import importlib
import sys

# Imported on first use when a model that needs them opens, each a few seconds and hundreds of
# thousands of objects (``import torchvision`` alone brings torch._dynamo, sympy and triton).
# The shipped demos need none of them, so start-up does not wait for them.
LIGHT_SOURCES = ("demo", "text_demo")
HEAVY_IMPORTS = ("torchvision", "torch_pruning", "torchprofile")


def imports_for(model_source: str) -> tuple[str, ...]:
    """What opening a model from ``model_source`` will import on first use."""
    if model_source in LIGHT_SOURCES:
        return ()
    return HEAVY_IMPORTS + (("transformers",) if model_source == "hf" else ())


def settle_heap() -> None:
    """Collects what is not frozen yet (so fresh garbage is not frozen with the living) and
    freezes what is left. Called when a model has just been opened."""
    gc.collect()
    gc.freeze()


def import_quietly(names) -> None:
    """Imports ``names`` (those not imported yet, and installed) with the collector off, then
    freezes what is alive, the new modules included.

    Imported on the worker thread with the collector on, torchvision's import ran two or three
    full collections of 200-260 ms each (the new module objects are many and long-lived), each
    holding the GIL and so freezing the window; and the settling collection after the open then
    walked them all again on the GUI thread. Module objects are not garbage: freezing them
    without a collection loses nothing, and later collections no longer walk them.
    """
    missing = [name for name in names if name not in sys.modules]
    if not missing:
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        for name in missing:
            try:
                importlib.import_module(name)
            except ImportError:
                pass   # an optional package: the source that needs it says so when used
    finally:
        gc.freeze()
        if enabled:
            gc.enable()

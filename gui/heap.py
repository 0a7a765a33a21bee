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


def settle_heap() -> None:
    """Collects what is not frozen yet (so fresh garbage is not frozen with the living) and
    freezes what is left. Called when a model has just been opened."""
    gc.collect()
    gc.freeze()

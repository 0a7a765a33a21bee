"""Keeping the garbage collector from freezing the window.

A full (generation-2) collection walks every tracked Python object, and with torch, Qt and a model
loaded that is a few hundred thousand of them: 100-1400 ms (ResNet-50 on a busy 2-core machine)
during which the thread running it holds the GIL, so the window stops repainting whichever
thread triggered the collection. After a model is opened, everything alive is moved out of the
collector's reach with ``gc.freeze()``; later collections then only walk what was made since, and
stay short.

No full collection is run here, and what was frozen before stays frozen: only the young
generations (what the open just made and discarded) are collected, which is short. Frozen objects
are still freed by reference counting as soon as nothing refers to them, which is how a replaced
model, its copies and its tensors go (PruneLab's sessions hold no reference cycles through them);
only cyclic garbage among objects frozen earlier is kept.
"""
from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collects the young generations (so fresh garbage is not frozen with the living) and
    freezes what is left. Called when a model has just been opened."""
    gc.collect(1)
    gc.freeze()

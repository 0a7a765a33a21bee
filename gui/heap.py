"""Keeping the garbage collector from freezing the window.

A full (generation-2) collection walks every tracked Python object, and with torch, Qt and a model
loaded that is a few hundred thousand of them: 100-300 ms during which the thread running it holds
the GIL, so the window stops repainting even when the engine thread triggered the collection.
After a model is opened, everything alive is moved out of the collector's reach with
``gc.freeze()``; later collections then only walk what was made since, and stay short.
"""
from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collects once (so garbage is not frozen with the living) and freezes what is left. Called
    on the GUI thread when a model has just been opened, a moment the user expects to wait."""
    gc.unfreeze()   # objects frozen earlier (a model since replaced) may be garbage by now
    gc.collect()
    gc.freeze()

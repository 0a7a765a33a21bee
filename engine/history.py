"""Undo as history: every operation that changed the model is a step the user can go back from.

Each step's model state is written to a private temporary folder (safetensors, no pickle) rather
than kept in memory: a ResNet-50 or BERT-base state is 100-400 MB, and holding several would break
the memory budget of fine-tuning. Going back restores the previous step from the session's
original (:func:`engine.runstore.restore_model`): no re-load of the source model from disk.
"""
from __future__ import annotations

import copy
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from torch import nn

from engine.runstore import capture_state, restore_model, write_safetensors

# steps kept; older ones are forgotten (the original is always there: Revert)
MAX_STEPS = 20


@dataclass(frozen=True)
class Step:
    """One operation's result: what the history list shows."""
    index: int
    label: str
    op: str


class History:
    """The steps since the model was opened, newest last."""

    def __init__(self, max_steps: int = MAX_STEPS) -> None:
        self.max_steps = max_steps
        self._folder: Optional[Path] = None
        self._steps: list[tuple[Step, Path, dict]] = []
        self._counter = 0

    @property
    def steps(self) -> list[Step]:
        return [s for s, _, _ in self._steps]

    def _dir(self) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="prunelab-history-"))
            weakref.finalize(self, shutil.rmtree, self._folder, True)
        return self._folder

    def push(self, model: nn.Module, label: str, op: str) -> Step:
        # the model's own tensors, streamed to the file: nothing changes them while this runs
        tensors, meta = capture_state(model, copy=False)
        self._counter += 1
        step = Step(self._counter, label, op)
        path = self._dir() / f"step{self._counter}.safetensors"
        write_safetensors(path, tensors)
        self._steps.append((step, path, meta))
        while len(self._steps) > self.max_steps:
            _, old, _ = self._steps.pop(0)
            old.unlink(missing_ok=True)
        return step

    def back(self, original: nn.Module) -> tuple[nn.Module, Optional[Step]]:
        """Drops the newest step and returns the model as it was before it (the original when no
        step is left) and the step that is now current (None: the original)."""
        if not self._steps:
            raise ValueError("nothing to go back from: the model is the original")
        _, path, _ = self._steps.pop()
        path.unlink(missing_ok=True)
        if not self._steps:
            return copy.deepcopy(original), None
        from safetensors.torch import load_file
        step, path, meta = self._steps[-1]
        return restore_model(original, load_file(str(path)), meta), step

    def clear(self) -> None:
        for _, path, _ in self._steps:
            path.unlink(missing_ok=True)
        self._steps.clear()


"""A copy of the model that no operation is working on, kept in a file instead of memory
(:class:`KeptModel`); and large arrays that are read only now and then, likewise
(:class:`ArrayFile`).

The session's original (Revert, the Compare table's original column) is read now and then and
never changed. Held in memory at BERT-base size it is 440 MB beside the live model, its gradients
and the optimizer's state: a third of what a plain PyTorch training loop needs in all. Above
``SPILL_BYTES`` the copy's tensors are written once to a private temporary file and every use maps
that file back (``torch.load(mmap=True)``, copy-on-write): pages are read as they are touched, and
the mapping goes when the use's module is dropped, so between uses the copy holds no resident
memory (the kernel's page cache keeps the file warm while memory allows). Smaller models are
kept in memory: their copy costs little and a file would only add a disk write. The files go in
the temporary folder (``TMPDIR``): on a tmpfs they are in memory after all.

Each use gets a module of its own built from the file, so a caller may hold it as long as it
needs; writing to it changes only that module (the pages are private), never the kept copy.
"""
from __future__ import annotations

import atexit
import copy
import mmap
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

# a copy smaller than this stays in memory (LeNet, the demos, the test suite's models)
SPILL_BYTES = 64 << 20


def _tensors(model: nn.Module) -> list[torch.Tensor]:
    """Every tensor a deep copy of ``model`` would copy from its modules: parameters, buffers
    and tensor attributes (torch.nn.utils.prune's masked ``weight``), each once."""
    seen: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for store in (module._parameters, module._buffers, module.__dict__):
            for value in store.values():
                if isinstance(value, torch.Tensor):
                    seen.setdefault(id(value), value)
    return list(seen.values())


def _meta(tensor: torch.Tensor) -> torch.Tensor:
    meta = torch.empty_like(tensor, device="meta")
    return (nn.Parameter(meta, requires_grad=tensor.requires_grad)
            if isinstance(tensor, nn.Parameter) else meta)


def meta_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model``'s structure, its tensors on the meta device (shapes, no data),
    made without copying any data on the way."""
    return copy.deepcopy(model, {id(t): _meta(t) for t in _tensors(model)})


class KeptModel:
    """A copy of ``model`` as it is now; :meth:`model` gives a module to use. ``replace`` maps
    the id of a tensor of ``model`` to what the copy holds instead (as a ``copy.deepcopy`` memo
    does: engine.transaction keeps masks as booleans and leaves recomputable weights out)."""

    def __init__(self, model: nn.Module, replace: Optional[dict[int, torch.Tensor]] = None,
                 spill_bytes: Optional[int] = None, folder: Optional[Path] = None) -> None:
        replace = replace or {}
        sources = _tensors(model)
        tensors = [replace.get(id(t), t) for t in sources]
        size = sum(t.numel() * t.element_size() for t in tensors)
        spill_bytes = SPILL_BYTES if spill_bytes is None else spill_bytes
        self._in_memory: Optional[nn.Module] = None
        self.path: Optional[Path] = None
        if size < spill_bytes or any(t.device.type != "cpu" or t.is_sparse for t in tensors):
            self._in_memory = copy.deepcopy(model, dict(replace))
            return
        # the structure without the data: every tensor becomes a meta tensor of its shape
        memo = {id(source): _meta(tensor) for source, tensor in zip(sources, tensors)}
        # id of each meta tensor in the skeleton -> its key in the file
        self._keys = {id(memo[id(source)]): f"t{i}" for i, source in enumerate(sources)}
        state = {f"t{i}": tensor.detach() for i, tensor in enumerate(tensors)}
        folder = Path(tempfile.mkdtemp(prefix="prunelab-kept-", dir=folder))
        weakref.finalize(self, _remove_folder, folder)
        self.path = folder / "model.pt"
        torch.save(state, self.path)   # storages shared between tensors stay shared
        del state
        self._metas = list(memo.values())   # the ids in self._keys stay theirs while they live
        self._skeleton = copy.deepcopy(model, memo)

    @property
    def on_disk(self) -> bool:
        return self._in_memory is None

    def model(self) -> nn.Module:
        """The kept model: the same module each time when kept in memory (do not change it; copy
        it first), a new one mapped from the file each time otherwise."""
        if self._in_memory is not None:
            return self._in_memory
        state = torch.load(self.path, mmap=True, weights_only=True)
        memo: dict[int, torch.Tensor] = {}
        for meta in self._metas:
            tensor = state[self._keys[id(meta)]]
            memo[id(meta)] = (nn.Parameter(tensor, requires_grad=meta.requires_grad)
                              if isinstance(meta, nn.Parameter) else tensor)
        return copy.deepcopy(self._skeleton, memo)


class ArrayFile:
    """Arrays appended one at a time to a private temporary file, then mapped back read-only
    (the size preview's sorted magnitudes: 340 MB at BERT-base size, of which a prediction reads
    a few pages per layer). Only one appended array is in memory at a time."""

    def __init__(self, folder: Optional[Path] = None) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="prunelab-arrays-", dir=folder))
        self._finalizer = weakref.finalize(self, _remove_folder, self._folder)
        self.path = self._folder / "arrays.bin"
        self._file = open(self.path, "wb")
        self._entries: list[tuple[str, np.dtype, int, int]] = []   # name, dtype, offset, size

    def append(self, name: str, values: np.ndarray) -> None:
        self._entries.append((name, values.dtype, self._file.tell(), values.size))
        values.tofile(self._file)

    def mapped(self) -> dict[str, np.ndarray]:
        """Each appended array, as a read-only view of the file; the file is removed when the
        last view is gone."""
        self._file.close()
        if not self._entries:
            return {}
        whole = np.memmap(self.path, dtype=np.uint8, mode="r")
        # the folder goes with the mapping now, not with this writer
        self._finalizer.detach()
        weakref.finalize(whole, _remove_folder, self._folder)
        return {name: whole[offset:offset + size * dtype.itemsize].view(dtype)
                for name, dtype, offset, size in self._entries}


def release_pages(arrays) -> None:
    """Lets the system take back the pages of file-mapped arrays (those of
    :meth:`ArrayFile.mapped`) that have been read; the next read maps them again from the page
    cache (a fraction of a millisecond). A lookup in a mapped array maps whole blocks of the file
    around each page it reads (the kernel maps ahead, in large folios): a few binary searches
    per layer of BERT-base's sorted magnitudes left 100-200 MB of the file resident, counted as
    the window's memory from then on. Arrays that are not mapped, and systems without
    ``madvise``, are left alone."""
    if not hasattr(mmap, "MADV_DONTNEED"):
        return
    done = set()
    for array in arrays:
        mapping = getattr(array, "_mmap", None)   # numpy.memmap and its views share it
        if mapping is None or id(mapping) in done or mapping.closed:
            continue
        done.add(id(mapping))
        mapping.madvise(mmap.MADV_DONTNEED)   # read-only and shared: the file keeps the data


# Removing a big file waits for the file system: 12 ms for BERT-base's 344 MB of sorted magnitudes
# on an idle disk, over 70 ms on the window's thread while the worker wrote an undo step (the
# journal was busy). Copies are dropped on whichever thread lets go of them last, the window's
# included (an old size preview), so their folders are removed on a thread of their own; at exit
# Python waits for those, and removes what is dropped from then on at once.
_removing: set[threading.Thread] = set()
_removing_lock = threading.Lock()
_exiting = False


def _remove_folder(folder: Path) -> None:
    if _exiting:
        shutil.rmtree(folder, ignore_errors=True)
        return
    thread = threading.Thread(target=_remove_now, args=(folder,), name="prunelab-remove",
                              daemon=True)
    with _removing_lock:
        _removing.add(thread)
    thread.start()


def _remove_now(folder: Path) -> None:
    try:
        shutil.rmtree(folder, ignore_errors=True)   # on Windows a mapped file stays (README)
    finally:
        with _removing_lock:
            _removing.discard(threading.current_thread())


def wait_for_removals() -> None:
    """Returns once the folders of every copy dropped so far are removed."""
    with _removing_lock:
        threads = list(_removing)
    for thread in threads:
        thread.join()


@atexit.register
def _remove_the_rest() -> None:
    global _exiting
    _exiting = True
    wait_for_removals()

"""A run store that survives restarts: every run's recipe, figures and model state, on disk.

Layout of a store folder::

    runs.sqlite            one row per run (standard-library sqlite3, WAL journal, no server)
    states/<uuid>.safetensors[.gz]   the run's model state: weights, masks, buffers (no pickle)

A run is written in two steps, each atomic: the state file (written to a temporary name, flushed,
renamed), then one SQLite transaction inserting its row. A writer killed between or during the
steps loses at most that run: a state file without a row is an orphan that :meth:`RunStore.prune_orphans`
removes, and SQLite's journal rolls back a half-done transaction, so the store itself is never
damaged.

A state is the model's ``state_dict`` (for a masked model the standard ``weight_orig`` /
``weight_mask`` pair) plus the layer widths channel removal changed. :func:`restore_model` rebuilds
the run's model from the session's original: the same architecture, resized where channels were
removed, masks installed with ``torch.nn.utils.prune.custom_from_mask``, then the tensors loaded
strictly: bit-identical weights, no code from the file.
"""
from __future__ import annotations

import copy
import gzip
import hashlib
import itertools
import json
import sqlite3
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from torch import nn
from torch.nn.utils import prune

from engine.io import atomic_path, atomic_write_bytes
from engine.progress import CancelToken, check_stop
from engine.structured.rebuild import resize_to
from engine.structured.shapes import layer_configs

STORE_FILE = "runs.sqlite"
STATES_DIR = "states"
SCHEMA_VERSION = 1
# gzip is kept only when it saves at least this fraction: pruned weights (runs of zeros) and
# boolean masks compress well, dense float weights hardly at all
COMPRESS_MIN_SAVING = 0.10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    label TEXT NOT NULL,
    recipe TEXT NOT NULL,
    source_path TEXT,
    source_sha256 TEXT,
    model_description TEXT NOT NULL,
    metrics TEXT NOT NULL,
    layer_sparsity TEXT NOT NULL,
    layer_widths TEXT NOT NULL,
    state_file TEXT NOT NULL,
    state_sha256 TEXT NOT NULL,
    state_meta TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class RunStoreError(ValueError):
    pass


@dataclass(frozen=True)
class StoredRun:
    """One row of the store, as plain data (the state stays on disk until restored)."""
    id: int
    created: float
    label: str
    recipe: dict
    source_path: Optional[str]
    source_sha256: Optional[str]
    model_description: str
    metrics: dict
    layer_sparsity: dict
    layer_widths: dict
    state_file: str
    state_sha256: str
    state_meta: dict


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_identity(model: nn.Module) -> str:
    """sha256 over a model's tensors (names, dtypes, shapes, bytes): the same for the same weights
    however they were opened (a checkpoint, the demo, a seeded random init), so a store finds the
    runs of the model the user has open."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        digest.update(f"{key}:{value.dtype}:{tuple(value.shape)}".encode())
        # reshape(-1): a 0-dim tensor (BatchNorm's num_batches_tracked) cannot be viewed as bytes
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes()
                      if value.numel() else b"")
    return digest.hexdigest()


# ---------------------------------------------------------------- model state

def capture_state(model: nn.Module, copy: bool = True) -> tuple[dict[str, torch.Tensor],
                                                                  dict[str, Any]]:
    """The tensors and the few facts :func:`restore_model` needs to rebuild ``model`` exactly.
    Tensors are cloned to the CPU: tied weights become separate entries (safetensors refuses shared
    storage) and later training cannot change what was stored. ``copy=False`` gives the model's
    own tensors (on the CPU) for a caller that writes them out before the model changes."""
    tensors = {k: v.detach().to("cpu", copy=copy).contiguous()
               for k, v in model.state_dict().items()}
    masked = sorted(k[:-len("_mask")] for k in tensors
                    if k.endswith("_mask") and f"{k[:-len('_mask')]}_orig" in tensors)
    return tensors, {"layers": layer_configs(model), "masked": masked, "training": model.training}


def restore_model(original: nn.Module, tensors: dict[str, torch.Tensor],
                  meta: dict[str, Any]) -> nn.Module:
    """The stored run's model, built from ``original`` (never changed): layers resized to the
    recorded widths, masks installed, every tensor loaded strictly."""
    model = copy.deepcopy(original)
    masked = set(meta.get("masked", []))
    shapes: dict[str, list[int]] = {}
    for key, value in tensors.items():
        if key.endswith("_mask") and key[:-len("_mask")] in masked:
            continue
        base = key[:-len("_orig")] if key.endswith("_orig") and key[:-len("_orig")] in masked else key
        shapes[base] = list(value.shape)
    try:
        resize_to(model, meta.get("layers", {}), shapes, "this model", "the stored run")
        for name in sorted(masked):
            owner_name, _, attr = name.rpartition(".")
            owner = model.get_submodule(owner_name) if owner_name else model
            prune.custom_from_mask(owner, attr, tensors[f"{name}_mask"])
        model.load_state_dict(tensors, strict=True)
    except (KeyError, RuntimeError, ValueError, AttributeError) as exc:   # CheckpointError too
        raise RunStoreError(f"the stored run does not fit this model: "
                            f"{str(exc).splitlines()[0]}") from None
    return model.train(bool(meta.get("training", False)))


# compressed in pieces of this size, with a Stop check between them (a few tenths of a second
# each on a busy machine): a ResNet-50 with masks is 200 MB, several seconds of gzip in one call
GZIP_PIECE = 4 << 20


def _gzip_packer():
    """gzip at level 1 with a zero mtime, as ``gzip.compress(raw, 1, mtime=0)`` (same format)."""
    return zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)


def _gzip(raw: bytes, cancel: Optional[CancelToken] = None) -> bytes:
    """``raw`` gzipped (see :func:`_gzip_packer`) in pieces, with a Stop check before each."""
    packer = _gzip_packer()
    view = memoryview(raw)
    pieces = []
    for start in range(0, len(raw), GZIP_PIECE):
        check_stop(cancel)
        pieces.append(packer.compress(view[start:start + GZIP_PIECE]))
    pieces.append(packer.flush())
    return b"".join(pieces)


# safetensors' names for the dtypes a model's state holds
_SAFETENSORS_DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
                       torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
                       torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}
COPY_PIECE = 4 << 20


def _safetensors_pieces(tensors: dict[str, torch.Tensor],
                        cancel: Optional[CancelToken] = None) -> tuple[int, Iterator[memoryview]]:
    """(file size, pieces) of the safetensors file of ``tensors``: a JSON header of names, dtypes,
    shapes and offsets, then the tensors' bytes back to back (``safetensors.torch.load`` reads it),
    in pieces of at most COPY_PIECE bytes, with a Stop check before each.

    ``safetensors.torch.save`` builds the file in one call that holds the GIL for the whole copy:
    for ResNet-50 with masks, 200 MB and 150 ms during which the window could not repaint."""
    header: dict[str, Any] = {}
    views = []
    offset = 0
    for name, tensor in tensors.items():
        if tensor.dtype not in _SAFETENSORS_DTYPES:
            raise RunStoreError(f"cannot store {name}: dtype {tensor.dtype}")
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        raw = flat.view(torch.uint8) if flat.dtype != torch.bool else flat.to(torch.uint8)
        size = raw.numel()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + size]}
        views.append(memoryview(raw.numpy()))
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)   # the data start 8-byte aligned, as safetensors writes it
    head = len(text).to_bytes(8, "little") + text

    def pieces() -> Iterator[memoryview]:
        yield memoryview(head)
        for view in views:
            for start in range(0, len(view), COPY_PIECE):
                check_stop(cancel)
                yield view[start:start + COPY_PIECE]
    return len(head) + offset, pieces()


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Writes ``tensors`` as a safetensors file, atomically, straight from their own memory:
    ``safetensors.torch.save_file`` first copies every tensor into bytes (with a model's own
    tensors and masks, 0.8 GB more at BERT-base size while the file is written)."""
    _write_pieces(path, _safetensors_pieces(tensors)[1], hashed=False)


def _safetensors_bytes(tensors: dict[str, torch.Tensor],
                       cancel: Optional[CancelToken] = None) -> bytearray:
    """The safetensors file of ``tensors`` in memory, copied 4 MB at a time (the GUI thread gets
    its turns in between)."""
    size, pieces = _safetensors_pieces(tensors, cancel)
    buffer = bytearray(size)
    position = 0
    for piece in pieces:
        buffer[position:position + len(piece)] = piece
        position += len(piece)
    return buffer


class _NotWorthCompressing(Exception):
    pass


def _gzipped(pieces: Iterator[memoryview], limit: float) -> Iterator[bytes]:
    """``pieces`` gzipped as they come; raises _NotWorthCompressing once the output passes
    ``limit`` bytes."""
    packer = _gzip_packer()
    written = 0
    for piece in itertools.chain(pieces, [None]):   # None: the end, flush
        packed = packer.flush() if piece is None else packer.compress(piece)
        written += len(packed)
        if written > limit:
            raise _NotWorthCompressing
        yield packed


def _write_pieces(path: Path, pieces: Iterator[bytes | memoryview], hashed: bool = True) -> str:
    """Writes ``pieces`` to ``path`` atomically (a failure or Stop leaves no file) and returns
    the sha256 of what was written ("" without ``hashed``: 0.6 s per GB here)."""
    digest = hashlib.sha256()
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        for piece in pieces:
            out.write(piece)
            if hashed:
                digest.update(piece)
    return digest.hexdigest() if hashed else ""


def _write_state_file(folder: Path, tensors: dict[str, torch.Tensor],
                      cancel: Optional[CancelToken] = None) -> tuple[str, str, bool]:
    """Writes the state file into ``folder`` atomically, streamed: (file name, sha256 of its bytes,
    gzip-compressed). Compressed where that saves COMPRESS_MIN_SAVING, as :func:`_encode_state`
    decides, but without holding the file in memory: building it there cost the file's size once
    for the safetensors bytes and about twice more for the gzip pieces and their join (1.4 GB
    for a BERT-base-size model with masks, on top of the model, at the end of each fine-tune)."""
    size, pieces = _safetensors_pieces(tensors, cancel)
    stem = uuid.uuid4().hex
    try:
        name = f"{stem}.safetensors.gz"
        return name, _write_pieces(folder / name,
                                   _gzipped(pieces, size * (1 - COMPRESS_MIN_SAVING))), True
    except _NotWorthCompressing:   # its temporary file is gone: the raw file instead
        _, pieces = _safetensors_pieces(tensors, cancel)
        name = f"{stem}.safetensors"
        return name, _write_pieces(folder / name, pieces), False


def _encode_state(tensors: dict[str, torch.Tensor],
                  cancel: Optional[CancelToken] = None) -> tuple[bytes, bool]:
    raw = _safetensors_bytes(tensors, cancel)
    packed = _gzip(raw, cancel)
    if len(packed) <= len(raw) * (1 - COMPRESS_MIN_SAVING):
        return packed, True
    return raw, False


def _decode_state(data: bytes, compressed: bool) -> dict[str, torch.Tensor]:
    from safetensors.torch import load
    return load(gzip.decompress(data) if compressed else data)


# ---------------------------------------------------------------- the store

class RunStore:
    """Runs of every model the user pruned, in ``folder`` (created when missing)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        try:
            (self.folder / STATES_DIR).mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.folder / STORE_FILE), timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                with self._db:
                    self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise RunStoreError(f"{self.folder / STORE_FILE} has run-store schema {row[0]}; "
                                    f"this PruneLab reads {SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise RunStoreError(f"cannot open the run store in {self.folder}: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def add(self, label: str, model: nn.Module, *, recipe: Optional[dict] = None,
            metrics: Optional[dict] = None, layer_sparsity: Optional[dict] = None,
            layer_widths: Optional[dict] = None, model_description: str = "",
            source: tuple[Optional[str], Optional[str]] = (None, None),
            cancel: Optional[CancelToken] = None) -> int:
        """Stores one run; returns its id. The state file lands first, then the row. A Stop
        (``cancel``) before the file is written leaves the store as it was."""
        # the model's own tensors, streamed to the file while this thread holds the model
        tensors, meta = capture_state(model, copy=False)
        check_stop(cancel)
        name, digest, compressed = _write_state_file(self.folder / STATES_DIR, tensors, cancel)
        meta["compressed"] = compressed
        try:
            check_stop(cancel)
            return self._insert_row(name, digest, meta, label=label, recipe=recipe or {},
                                    metrics=metrics or {}, layer_sparsity=layer_sparsity or {},
                                    layer_widths=layer_widths or {},
                                    model_description=model_description, source_path=source[0],
                                    source_sha256=source[1])
        except BaseException:
            (self.folder / STATES_DIR / name).unlink(missing_ok=True)   # no row names it
            raise

    def add_state(self, entry: dict[str, Any], data: bytes, source_sha256: str) -> int:
        """Stores a run whose state bytes were written elsewhere (a project bundle's)."""
        return self._insert(data, entry["state_meta"], label=entry["label"], recipe=entry["recipe"],
                            metrics=entry["metrics"], layer_sparsity=entry["layer_sparsity"],
                            layer_widths=entry["layer_widths"],
                            model_description=entry["model_description"],
                            source_path=entry.get("source_path"), source_sha256=source_sha256,
                            created=entry.get("created"))

    def _insert(self, data: bytes, meta: dict, *, label: str, recipe: dict, metrics: dict,
                layer_sparsity: dict, layer_widths: dict, model_description: str,
                source_path: Optional[str], source_sha256: Optional[str],
                created: Optional[float] = None) -> int:
        """The two atomic steps: the state file, then the row naming it."""
        name = f"{uuid.uuid4().hex}.safetensors" + (".gz" if meta.get("compressed") else "")
        atomic_write_bytes(self.folder / STATES_DIR / name, data)
        return self._insert_row(name, hashlib.sha256(data).hexdigest(), meta, label=label,
                                recipe=recipe, metrics=metrics, layer_sparsity=layer_sparsity,
                                layer_widths=layer_widths, model_description=model_description,
                                source_path=source_path, source_sha256=source_sha256,
                                created=created)

    def _insert_row(self, name: str, digest: str, meta: dict, *, label: str, recipe: dict,
                    metrics: dict, layer_sparsity: dict, layer_widths: dict,
                    model_description: str, source_path: Optional[str],
                    source_sha256: Optional[str], created: Optional[float] = None) -> int:
        """The second step: the row naming a state file already in place."""
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO runs (created, label, recipe, source_path, source_sha256, "
                "model_description, metrics, layer_sparsity, layer_widths, state_file, state_sha256, "
                "state_meta) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (created if created is not None else time.time(), label, _dumps(recipe),
                 source_path, source_sha256, model_description, _dumps(metrics),
                 _dumps(layer_sparsity), _dumps(layer_widths), name, digest, _dumps(meta)))
        return int(cursor.lastrowid)

    def runs(self, source_sha256: Optional[str] = None) -> list[StoredRun]:
        query = "SELECT * FROM runs"
        args: tuple = ()
        if source_sha256 is not None:
            query += " WHERE source_sha256 = ?"
            args = (source_sha256,)
        return [_row(r) for r in self._db.execute(query + " ORDER BY id", args)]

    def get(self, run_id: int) -> StoredRun:
        row = self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunStoreError(f"no run {run_id} in {self.folder}")
        return _row(row)

    def state(self, run_id: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The run's tensors, checked against the digest recorded with them."""
        run = self.get(run_id)
        path = self.folder / STATES_DIR / run.state_file
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RunStoreError(f"run {run_id}'s state {path.name} cannot be read: "
                                f"{exc.strerror or exc}") from None
        if hashlib.sha256(data).hexdigest() != run.state_sha256:
            raise RunStoreError(f"run {run_id}'s state {path.name} is damaged (its checksum differs)")
        return _decode_state(data, bool(run.state_meta.get("compressed"))), run.state_meta

    def restore(self, run_id: int, original: nn.Module) -> nn.Module:
        tensors, meta = self.state(run_id)
        return restore_model(original, tensors, meta)

    def delete(self, run_id: int) -> None:
        run = self.get(run_id)
        with self._db:
            self._db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        (self.folder / STATES_DIR / run.state_file).unlink(missing_ok=True)

    def prune_orphans(self) -> list[str]:
        """Removes state files no row names (left by a writer killed between its two steps) and
        temporary files of interrupted writes; returns their names."""
        named = {r[0] for r in self._db.execute("SELECT state_file FROM runs")}
        removed = []
        for f in (self.folder / STATES_DIR).iterdir():
            if f.is_file() and f.name not in named:
                f.unlink(missing_ok=True)
                removed.append(f.name)
        return removed

    def integrity_ok(self) -> bool:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _dumps(value: Any) -> str:
    from engine.export import _jsonable
    return json.dumps(value, default=_jsonable, allow_nan=True)


def _row(row: tuple) -> StoredRun:
    (run_id, created, label, recipe, source_path, source_sha256, description, metrics, sparsity,
     widths, state_file, state_sha256, state_meta) = row
    return StoredRun(run_id, created, label, json.loads(recipe), source_path, source_sha256,
                     description, json.loads(metrics), json.loads(sparsity), json.loads(widths),
                     state_file, state_sha256, json.loads(state_meta))

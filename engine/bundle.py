"""A project bundle: one ``.prunelab`` file (a zip) that brings a session back exactly.

Inside: ``manifest.json`` (the recipe, the model's identity and description, the current model's
state facts, every stored run of this model as a row), ``current.safetensors`` (the model as it is
now), ``runs/<file>`` (each run's state, as in the run store) and ``report.json`` (the last
comparison table). The source model itself is referenced by the recipe, not copied: a bundle opens
where the recipe's model and data can be opened, and is refused with that reason elsewhere.

Opening a bundle never runs code: only JSON and safetensors members are accepted (a pickle, or any
other member, is refused before anything is read), member names may not leave the archive, and
every state is checked against the digest recorded for it.
"""
from __future__ import annotations

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from engine.io import atomic_path
from engine.runstore import (RunStore, StoredRun, _decode_state, _dumps, _encode_state,
                             capture_state, restore_model)

if TYPE_CHECKING:
    from engine.config import Recipe
    from engine.session import Session

BUNDLE_FORMAT = "prunelab-project"
BUNDLE_VERSION = 1
SUFFIX = ".prunelab"
_ALLOWED = re.compile(r"^(manifest\.json|report\.json|current\.safetensors(\.gz)?|"
                      r"runs/[0-9a-f]{32}\.safetensors(\.gz)?)$")


class BundleError(ValueError):
    pass


@dataclass
class Bundle:
    manifest: dict[str, Any]
    path: Path

    @property
    def recipe(self) -> "Recipe":
        from engine.config import Recipe
        return Recipe.from_dict(self.manifest["recipe"])


def save_bundle(path: str | Path, session: "Session", recipe: "Recipe",
                store: Optional[RunStore] = None) -> Path:
    """Writes the project file atomically; returns its path."""
    path = Path(path).expanduser()
    if path.suffix != SUFFIX:
        raise BundleError(f"a project file ends in {SUFFIX}, not '{path.suffix or 'nothing'}'")
    tensors, meta = capture_state(session.model)
    current, compressed = _encode_state(tensors)
    meta["compressed"] = compressed
    current_name = "current.safetensors" + (".gz" if compressed else "")
    runs = store.runs(source_sha256=session.identity()) if store is not None else []
    manifest = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "recipe": recipe.to_dict(),
                "identity": session.identity(), "model_description": session.loaded.description,
                "current": {"file": current_name, "sha256": hashlib.sha256(current).hexdigest(),
                            "meta": meta},
                "runs": [_run_entry(r) for r in runs]}
    report = {"comparison": session.comparison()} if (
        session.original_metrics is not None and session.current_metrics is not None) else None
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("manifest.json", _dumps(manifest))
            zf.writestr(current_name, current)
            for run in runs:
                zf.write(store.folder / "states" / run.state_file, f"runs/{run.state_file}")
            if report is not None:
                zf.writestr("report.json", _dumps(report))
    return path


def _run_entry(run: StoredRun) -> dict[str, Any]:
    return {"label": run.label, "created": run.created, "recipe": run.recipe,
            "source_path": run.source_path, "model_description": run.model_description,
            "metrics": run.metrics, "layer_sparsity": run.layer_sparsity,
            "layer_widths": run.layer_widths, "state_file": run.state_file,
            "state_sha256": run.state_sha256, "state_meta": run.state_meta}


def read_bundle(path: str | Path) -> Bundle:
    """Checks the file's members and manifest; reads no state yet."""
    path = Path(path).expanduser()
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            bad = [n for n in names if not _ALLOWED.match(n)]
            if bad:
                raise BundleError(f"{path.name} contains {bad[0]}, which is not part of a PruneLab "
                                  f"project (a project holds only JSON and safetensors, never a "
                                  f"pickle): not opened")
            if "manifest.json" not in names:
                raise BundleError(f"{path.name} has no manifest.json: not a PruneLab project")
            manifest = json.loads(zf.read("manifest.json").decode("utf-8"))
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"cannot read {path.name} as a project: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path.name}: its manifest is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path.name} is not a PruneLab project")
    if manifest.get("version") != BUNDLE_VERSION:
        raise BundleError(f"{path.name} is project format version {manifest.get('version')}; this "
                          f"PruneLab reads version {BUNDLE_VERSION}")
    for key in ("recipe", "identity", "current", "runs"):
        if key not in manifest:
            raise BundleError(f"{path.name}: its manifest lacks '{key}'")
    return Bundle(manifest, path)


def _member(bundle: Bundle, name: str, sha256: str) -> bytes:
    with zipfile.ZipFile(bundle.path) as zf:
        data = zf.read(name)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise BundleError(f"{bundle.path.name}: {name} is damaged (its checksum differs)")
    return data


def apply_bundle(bundle: Bundle, session: "Session", store: Optional[RunStore] = None) -> int:
    """Brings ``session`` (opened from the bundle's recipe) to the bundle's state: its runs go into
    ``store`` (those already there are not duplicated) and the current model is restored. Returns
    the number of runs added."""
    if session.identity() != bundle.manifest["identity"]:
        raise BundleError(f"{bundle.path.name} was saved from another model "
                          f"({bundle.manifest.get('model_description')}); the recipe's model has "
                          f"different weights now")
    current = bundle.manifest["current"]
    data = _member(bundle, current["file"], current["sha256"])
    model = restore_model(session.original, _decode_state(data, bool(current["meta"].get("compressed"))),
                          current["meta"])
    added = 0
    if store is not None:
        known = {r.state_sha256 for r in store.runs(source_sha256=session.identity())}
        for entry in bundle.manifest["runs"]:
            if entry["state_sha256"] in known:
                continue
            state = _member(bundle, f"runs/{entry['state_file']}", entry["state_sha256"])
            store.add_state(entry, state, session.identity())
            added += 1
    session._replace_model(model)
    session.current_metrics = None
    session.record_step(f"project {bundle.path.name}", "project")
    return added

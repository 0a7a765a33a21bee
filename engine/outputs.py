"""Every file a run will write, checked before any work starts.

A run of minutes that fails at its end because the export folder is read-only, or that quietly
writes its ``--json`` over the checkpoint it read, loses the user's work. So the CLI (before it loads
anything) and the window (before Export) call :func:`check_outputs` with the run's outputs and
inputs, and the run starts only when every output

- is not one of the inputs (checkpoint, its companions, the recipe, data and vocabulary files) and
  does not lie inside an input folder (a Hugging Face model, a data root, PruneLab's resources);
- differs from every other output (the export, its masks/report/shapes/... files, ``--json``);
- can be written: it is not a folder, no parent is a file, and the nearest existing folder accepts
  a new file (tried, not guessed from permission bits, which say nothing to root or on read-only
  mounts).

Messages name the path the user gave, never a temporary file. Plain Python: no torch here.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

from engine.paths import RESOURCES

if TYPE_CHECKING:
    from engine.config import DataSpec, ExportSpec, ModelSpec, Recipe


class OutputError(ValueError):
    """An output path that cannot or must not be written; the message names it."""


@dataclass(frozen=True)
class RunFile:
    """One file or folder a run reads or writes, with what it is in the user's words."""
    path: Path
    role: str
    folder: bool = False   # an input folder: nothing may be written inside it
    makes_folders: bool = True   # an output whose missing folders are created (exports are)


# What each export kind is called beside ``export.path`` (``model.pt`` -> ``model.onnx``...).
_EXPORT_NAMES = {"state_dict": "{name}", "masks": "{stem}.masks{suffix}",
                 "report": "{stem}.report.json", "shapes": "{stem}.shapes.json",
                 "torchscript": "{stem}.torchscript.pt", "onnx": "{stem}.onnx",
                 "pickle": "{stem}.pickle.pt", "sidecar": "{stem}.json"}
_EXPORT_ROLES = {"state_dict": "the export", "masks": "the masks file", "report": "the report",
                 "shapes": "the shapes file", "torchscript": "the TorchScript file",
                 "onnx": "the ONNX file", "pickle": "the pickled model",
                 "sidecar": "the vocabulary file"}


def export_file(path: Path, kind: str) -> Path:
    """Where one kind of export file goes, beside ``path``."""
    if kind not in _EXPORT_NAMES:
        raise OutputError(f"unknown export format '{kind}'")
    path = Path(path)
    return path.with_name(_EXPORT_NAMES[kind].format(name=path.name, stem=path.stem,
                                                     suffix=path.suffix))


def is_text_checkpoint(model: "ModelSpec") -> bool:
    """A BiLSTM reads (and its export writes) a vocabulary JSON beside the checkpoint."""
    return model.source == "text_demo" or (model.source == "state_dict" and model.arch == "bilstm")


def export_outputs(spec: "ExportSpec", text_sidecar: bool = False) -> list[RunFile]:
    """Every file an export with ``spec`` writes."""
    if not spec.path:
        return []
    path = Path(spec.path).expanduser()
    kinds = list(spec.kinds)
    kinds[1:1] = (["masks"] if spec.include_masks else []) + (["report"] if spec.report else [])
    if text_sidecar:
        kinds.append("sidecar")
    return [RunFile(export_file(path, k), _EXPORT_ROLES[k]) for k in kinds]


def model_inputs(model: "ModelSpec") -> list[RunFile]:
    files = [RunFile(RESOURCES, "PruneLab's built-in resources", folder=True)]
    if model.path:
        path = Path(model.path).expanduser()
        files.append(model_source(path, folder=model.source == "hf" or path.is_dir()))
        if is_text_checkpoint(model):
            files.append(model_source(path.with_suffix(".json")))
    if model.shapes:
        files.append(model_source(Path(model.shapes).expanduser()))
    return files


def model_source(path: Path, folder: bool = False) -> RunFile:
    """A file (or a Hugging Face folder) the model was read from."""
    return RunFile(path, "the model's" if folder else "one of the model's source files", folder)


def data_inputs(data: "DataSpec") -> list[RunFile]:
    files = []
    if data.root:
        root = Path(data.root).expanduser()
        files.append(RunFile(root, "the data", folder=not root.is_file()))
    for key, role in (("vocab_path", "the vocabulary"), ("vectors_path", "the word vectors"),
                      ("tokenizer_path", "the tokenizer")):
        value = getattr(data, key)
        if value:
            path = Path(value).expanduser()
            files.append(RunFile(path, role, folder=path.is_dir()))
    return files


def recipe_inputs(recipe: "Recipe", recipe_path: Optional[Path] = None) -> list[RunFile]:
    files = model_inputs(recipe.model) + data_inputs(recipe.data)
    if recipe.prune.plugin:
        files.append(RunFile(Path(recipe.prune.plugin).expanduser(), "the pruning plugin"))
    if recipe_path is not None:
        files.append(RunFile(Path(recipe_path).expanduser(), "the recipe"))
    return files


def recipe_outputs(recipe: "Recipe", json_path: Optional[Path] = None) -> list[RunFile]:
    files = export_outputs(recipe.export, text_sidecar=is_text_checkpoint(recipe.model))
    if json_path is not None:
        files.append(RunFile(Path(json_path).expanduser(), "--json",
                             makes_folders=False))
    return files


def check_outputs(outputs: Iterable[RunFile], inputs: Iterable[RunFile]) -> None:
    """Raises :class:`OutputError` naming the first output that must not or cannot be written."""
    outputs, inputs = list(outputs), list(inputs)
    seen: dict[Path, RunFile] = {}
    for out in outputs:
        target = _resolved(out.path)
        for source in inputs:
            _refuse_input(out, target, source)
        if target in seen:
            raise OutputError(f"{out.path} would be written twice, as {seen[target].role} and as "
                              f"{out.role}: give them different names")
        seen[target] = out
        _check_writable(out)


def check_recipe_outputs(recipe: "Recipe", recipe_path: Optional[Path] = None,
                         json_path: Optional[Path] = None) -> None:
    check_outputs(recipe_outputs(recipe, json_path), recipe_inputs(recipe, recipe_path))


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser().resolve()))


def _refuse_input(out: RunFile, target: Path, source: RunFile) -> None:
    origin = _resolved(source.path)
    if target == origin or (target.exists() and origin.exists() and os.path.samefile(target, origin)):
        raise OutputError(f"refusing to write {out.role} to {out.path}: it is {source.role}, which "
                          f"this run reads. Choose another file name.")
    if source.folder and origin in target.parents:
        raise OutputError(f"refusing to write {out.role} to {out.path}: it is inside "
                          f"{source.role} folder {source.path}. Choose another folder.")


def _check_writable(out: RunFile) -> None:
    path = Path(out.path).expanduser()
    if path.is_dir():
        raise OutputError(f"{out.role} {path} is a folder; give a file name")
    folder = path.parent
    if not out.makes_folders and not folder.exists():
        raise OutputError(f"{out.role}: folder {folder} does not exist")
    while not folder.exists():
        if folder == folder.parent:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"cannot write {out.role} {path}: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".prunelab-write-check-", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write {out.role} {path}: folder {folder} is not writable "
                          f"({exc.strerror or exc}); choose another folder") from None
    os.close(fd)
    os.unlink(probe)

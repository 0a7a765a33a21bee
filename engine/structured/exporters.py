"""Exporting a (possibly smaller) model in forms that load without PruneLab.

- ``state_dict``: the folded .pt/.safetensors of :func:`engine.export.export_model` (plus masks and
  the JSON report as before);
- ``shapes``: ``<name>.shapes.json`` beside it, the layer shapes from which
  :func:`engine.structured.rebuild.load_structured` rebuilds a channel-pruned model by architecture
  name — data only, no pickle;
- ``torchscript``: ``<name>.torchscript.pt``, loads with ``torch.jit.load`` (no Python class needed);
- ``onnx``: ``<name>.onnx`` with a dynamic batch dimension, for onnxruntime and other runtimes;
- ``pickle``: ``<name>.pickle.pt``, the whole module pickled. Loading it runs code from the file
  (``torch.load(weights_only=False)``), so the name and the report say so.

Every file is written atomically and none may overwrite the model's source checkpoint.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from engine.export import ExportError, export_model, refuse_protected
from engine.config import EXPORT_KINDS
from engine.io import atomic_path
from engine.outputs import export_file
from engine.metrics import _plain_copy, to_device
from engine.structured.rebuild import shapes_document, write_shapes

PICKLE_WARNING = ("a whole pickled model: loading it (torch.load(weights_only=False)) runs code "
                  "from the file, so load it only if you trust where it came from")


def export_paths(path: Path, kinds: list[str]) -> dict[str, Path]:
    """Where each requested kind goes, all beside ``path`` (named in engine.outputs)."""
    unknown = [k for k in kinds if k not in EXPORT_KINDS]
    if unknown:
        raise ExportError(f"unknown export format(s): {', '.join(unknown)}")
    return {k: export_file(path, k) for k in kinds}


def _inference_copy(model: nn.Module) -> nn.Module:
    """Masks folded in, evaluation mode, on the CPU: what every exported form should compute."""
    return _plain_copy(model).cpu().eval()


def _as_args(example_input) -> tuple:
    example = to_device(example_input, torch.device("cpu"))
    return tuple(example) if isinstance(example, (tuple, list)) else (example,)


def save_torchscript(model: nn.Module, example_input, path: Path) -> Path:
    module = _inference_copy(model)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            traced = torch.jit.trace(module, _as_args(example_input))
        except Exception as exc:
            raise ExportError(f"TorchScript export failed: the model could not be traced "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated, still loads everywhere
        torch.jit.save(traced, str(tmp))
    return path


def save_onnx(model: nn.Module, example_input, path: Path, opset: int = 17) -> Path:
    module = _inference_copy(model)
    args = _as_args(example_input)
    input_names = ["input"] if len(args) == 1 else [f"input_{i}" for i in range(len(args))]
    axes = {name: {0: "batch"} for name in input_names}
    axes["output"] = {0: "batch"}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # The TorchScript-based exporter (dynamo=False) handles every CNN here, needs nothing
            # online and is a few times faster than the torch.export-based one.
            torch.onnx.export(module, args, str(tmp), dynamo=False, input_names=input_names,
                              output_names=["output"], dynamic_axes=axes, opset_version=opset)
        except Exception as exc:
            raise ExportError(f"ONNX export failed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return path


def save_pickle(model: nn.Module, path: Path) -> Path:
    module = _inference_copy(model)
    with atomic_path(path) as tmp:
        torch.save(module, tmp)
    return path


def export_all(model: nn.Module, path: str | Path, kinds: list[str], example_input=None,
               arch: Optional[str] = None, num_classes: Optional[int] = None,
               input_shape: Optional[tuple[int, ...]] = None, include_masks: bool = False,
               report: Optional[dict[str, Any]] = None,
               protected: tuple[Path, ...] = (),
               dtype: Optional[torch.dtype] = None) -> list[Path]:
    """Writes the state_dict at ``path`` and every other requested kind beside it; returns the paths.

    ``example_input`` is needed for torchscript/onnx (tracing); ``arch``/``num_classes`` for shapes
    (the rebuild builds the architecture by that name)."""
    path = Path(path).expanduser()
    kinds = ["state_dict"] + [k for k in kinds if k != "state_dict"]
    targets = export_paths(path, kinds)
    refuse_protected(targets.values(), protected)
    if ("torchscript" in kinds or "onnx" in kinds) and example_input is None:
        raise ExportError("TorchScript and ONNX export need an example input to trace the model")
    if "shapes" in kinds and not arch:
        raise ExportError("the shapes file needs the model's architecture name (lenet or a "
                          "torchvision model) so the model can be rebuilt; this model has none")
    if report is not None:
        report = dict(report)
        report["files"] = {k: {"path": str(p), **({"warning": PICKLE_WARNING} if k == "pickle" else {})}
                           for k, p in targets.items()}
    written = export_model(model, path, include_masks, report, protected, dtype)
    if "shapes" in kinds:
        write_shapes(targets["shapes"], shapes_document(model, arch, num_classes, input_shape,
                                                        state_dict_file=path.name))
        written.append(targets["shapes"])
    if "torchscript" in kinds:
        written.append(save_torchscript(model, example_input, targets["torchscript"]))
    if "onnx" in kinds:
        written.append(save_onnx(model, example_input, targets["onnx"]))
    if "pickle" in kinds:
        written.append(save_pickle(model, targets["pickle"]))
    return written

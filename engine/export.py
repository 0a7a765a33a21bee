"""Exporting a pruned model so plain PyTorch can load it elsewhere.

The exported state_dict has every mask folded into its weight, so its keys are exactly the plain
architecture's and ``load_state_dict(strict=True)`` works with no PruneLab code. Masks, when asked
for, go to a separate file beside it; a JSON report records the settings and the comparison table.
Every file is written atomically, and the model's own source checkpoint is never written.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from engine.io import atomic_path, atomic_write_text
from engine.metrics import effective_state


class ExportError(ValueError):
    pass


def companion_path(path: Path, kind: str) -> Path:
    """``model.pt`` -> ``model.masks.pt`` / ``model.report.json``."""
    suffix = ".json" if kind == "report" else path.suffix
    return path.with_name(f"{path.stem}.{kind}{suffix}")


def collect_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    from engine.pruning.targets import prunable_targets
    return {t.name: t.mask().detach().to(torch.bool).cpu()
            for t in prunable_targets(model) if t.is_masked}


def plain_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors as an export writes them: detached, on the CPU, contiguous."""
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tensors = plain_tensors(tensors)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import save_file
            # safetensors refuses tensors sharing storage; clone to be safe with tied weights.
            save_file({k: v.clone() for k, v in tensors.items()}, str(tmp))
        else:
            # through a file object, torch.save names the archive inside "archive" whatever the
            # file is called, so the file's size is exactly the table's "Size (dense file)"
            with open(tmp, "wb") as stream:
                torch.save(tensors, stream)


def refuse_protected(outputs, protected) -> None:
    """Raises before anything is written if an output is one of the model's own files (its
    checkpoint, layer-shapes JSON...) or lies inside its source folder (a Hugging Face model)."""
    guarded = [Path(p).expanduser().resolve() for p in protected if p is not None]
    for out in outputs:
        target = Path(out).expanduser().resolve()
        for source in guarded:
            if target == source:
                raise ExportError(f"refusing to overwrite {out}: it is one of the model's source "
                                  f"files. Choose another file name.")
            if source.is_dir() and source in target.parents:
                raise ExportError(f"refusing to write {out}: it is inside the model's source "
                                  f"folder {source}. Choose another folder.")


def export_model(model: nn.Module, path: str | Path, include_masks: bool = False,
                 report: Optional[dict[str, Any]] = None,
                 protected: tuple[Path, ...] = ()) -> list[Path]:
    """Writes the folded state_dict (and optionally masks and a JSON report); returns the paths."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".pt", ".pth", ".safetensors"):
        raise ExportError(f"export file must end in .pt, .pth or .safetensors, not '{path.suffix}'")
    outputs = [path]
    if include_masks:
        outputs.append(companion_path(path, "masks"))
    if report is not None:
        outputs.append(companion_path(path, "report"))
    refuse_protected(outputs, protected)
    state = {k: v for k, v in effective_state(model).items()}
    save_tensors(state, path)
    if include_masks:
        save_tensors(collect_masks(model), outputs[1])
    if report is not None:
        atomic_write_text(outputs[-1], json.dumps(report, indent=2, default=_jsonable) + "\n")
    return outputs


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    return str(obj)

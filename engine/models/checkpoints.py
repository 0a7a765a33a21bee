"""Reading checkpoints safely.

State dicts load with ``weights_only=True``: a checkpoint is data, and an untrusted pickle can run
arbitrary code. Only :func:`load_pickled_model` unpickles, and only when the caller says the user
trusts that file.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
# Common wrappers around the real state_dict written by training scripts and frameworks.
NESTING_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why in the user's terms."""


def read_state_dict(path: str | Path) -> "OrderedDict[str, torch.Tensor]":
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            raw: Any = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path.name} is not a readable safetensors file: {exc}") from None
    else:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError...
            text = type(exc).__name__
            # torch says "can still be loaded" when only the weights-only restriction stopped it,
            # i.e. the file is a valid pickle of more than tensors.
            if "can still be loaded" in str(exc) or "Unsupported global" in str(exc):
                raise CheckpointError(
                    f"{path.name} holds more than tensors (probably a whole pickled model). "
                    f"Loading it would run code from the file: open it as a full model only if you "
                    f"trust its source.") from None
            raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint: {text}") from None
    return unwrap_state_dict(raw, path.name)


def unwrap_state_dict(raw: Any, label: str = "checkpoint") -> "OrderedDict[str, torch.Tensor]":
    """Finds the tensor dict inside common wrappers and drops DataParallel's ``module.`` prefix."""
    if isinstance(raw, nn.Module):
        raw = raw.state_dict()
    for _ in range(3):
        if isinstance(raw, dict) and not _is_tensor_dict(raw):
            inner = next((raw[k] for k in NESTING_KEYS if k in raw and isinstance(raw[k], dict)), None)
            if inner is None:
                break
            raw = inner
    if not isinstance(raw, dict) or not _is_tensor_dict(raw):
        raise CheckpointError(f"{label} does not contain a state_dict (a mapping of names to tensors)")
    tensors = OrderedDict((k, v) for k, v in raw.items() if isinstance(v, torch.Tensor))
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = OrderedDict((k[len("module."):], v) for k, v in tensors.items())
    return fold_mask_entries(tensors)


def fold_mask_entries(state: "OrderedDict[str, torch.Tensor]") -> "OrderedDict[str, torch.Tensor]":
    """A state_dict saved while torch.nn.utils.prune masks were installed has ``x_orig``/``x_mask``
    pairs; fold them into ``x`` so it loads into the plain architecture."""
    if not any(k.endswith("_orig") for k in state):
        return state
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, value in state.items():
        if key.endswith("_mask") and key[:-5] + "_orig" in state:
            continue
        if key.endswith("_orig") and key[:-5] + "_mask" in state:
            out[key[:-5]] = value * state[key[:-5] + "_mask"]
        else:
            out[key] = value
    return out


def _is_tensor_dict(d: dict) -> bool:
    values = list(d.values())
    return bool(values) and sum(isinstance(v, torch.Tensor) for v in values) >= max(1, len(values) // 2)


def load_into(model: nn.Module, state: "OrderedDict[str, torch.Tensor]", label: str) -> None:
    """strict load with a readable summary instead of torch's wall of key names."""
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even when strict=False
        lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln]
        detail = lines[0] if lines else str(exc).splitlines()[0]
        raise CheckpointError(f"{label} does not match the architecture: {detail}") from None
    problems = []
    if result.missing_keys:
        problems.append(f"{len(result.missing_keys)} missing (e.g. {', '.join(result.missing_keys[:3])})")
    if result.unexpected_keys:
        problems.append(f"{len(result.unexpected_keys)} unexpected (e.g. "
                        f"{', '.join(result.unexpected_keys[:3])})")
    if problems:
        raise CheckpointError(f"{label} does not match the architecture: keys "
                              + "; ".join(problems))


def half_dtype(state: "OrderedDict[str, torch.Tensor]") -> "torch.dtype | None":
    """float16 or bfloat16 when every floating tensor of the checkpoint has that dtype."""
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 and dtypes & {torch.float16, torch.bfloat16} else None


def load_pickled_model(path: str | Path, trusted: bool) -> nn.Module:
    path = Path(path).expanduser()
    if not trusted:
        raise CheckpointError(f"{path.name}: a full pickled model runs code when loaded; "
                              f"confirm that you trust this file first")
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path.name} could not be unpickled: {exc}") from None
    if isinstance(obj, torch.jit.ScriptModule) or isinstance(obj, nn.Module):
        return obj
    raise CheckpointError(f"{path.name} holds a {type(obj).__name__}, not a torch.nn.Module")

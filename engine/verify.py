"""Verifying an export the way a user elsewhere would load it.

Each written format is loaded in a separate Python process started in an empty temporary folder
(nothing of the running session is shared with it): a state_dict with plain
``load_state_dict(strict=True)`` into the stock architecture, a channel-pruned model through the
no-pickle rebuild from its shapes JSON, TorchScript with ``torch.jit.load``, ONNX with onnxruntime,
the pickle with ``torch.load(weights_only=False)``. Each runs the same inputs as the live model;
the report gives the largest output difference, the loaded model's latency and a loading snippet
to paste. A difference above the tolerance is an error, not a warning.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from engine.metrics import _plain_copy, forward_batch
from engine.structured.exporters import export_paths

# outputs of the same float32 weights on the same CPU; ONNX Runtime's kernels differ in the last bits
TOLERANCE = 1e-5
VERIFY_TIMEOUT_S = 300
TORCHVISION_PREFIX = "torchvision."

# One runner for every format: load as the snippet says, run the inputs, time, save the outputs.
_RUNNER = r'''
import json, sys, time
import torch
from safetensors.torch import load_file, save_file
kind, path, inputs_file, outputs_file, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
arch, num_classes = sys.argv[6], int(sys.argv[7])
torch.set_num_threads(1)
inputs = load_file(inputs_file)
args = [inputs[f"input_{i}"] for i in range(len(inputs))]
if kind == "onnx":
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feed = {n: a.numpy() for n, a in zip(names, args)}
    call = lambda: torch.from_numpy(session.run(None, feed)[0])
else:
    if kind == "state_dict":
        state = load_file(path) if path.endswith(".safetensors") else torch.load(path, weights_only=True)
        if arch == "lenet":
            from engine.models.lenet import LeNet
            model = LeNet(num_classes=num_classes)
        else:
            import torchvision
            model = getattr(torchvision.models, arch)(num_classes=num_classes)
        model.load_state_dict(state, strict=True)
    elif kind == "shapes":
        from engine.structured.rebuild import load_structured
        model = load_structured(path)
    elif kind == "torchscript":
        model = torch.jit.load(path)
    elif kind == "pickle":
        model = torch.load(path, weights_only=False)
    else:
        raise SystemExit(f"unknown format {kind}")
    model.eval()
    def call():
        with torch.no_grad():
            return model(*args)
out = call()
times = []
for _ in range(runs):
    t = time.perf_counter(); call(); times.append(time.perf_counter() - t)
save_file({"output": out.contiguous()}, outputs_file)
times.sort()
print(json.dumps({"latency_ms": 1000 * times[len(times) // 2]}))
'''

SNIPPETS = {
    "state_dict_torchvision": ("import torch, torchvision\n"
                               "model = torchvision.models.{arch}(num_classes={num_classes})\n"
                               "model.load_state_dict({load}, strict=True)\nmodel.eval()"),
    "state_dict_lenet": ("import torch\nfrom engine.models.lenet import LeNet   # PruneLab's LeNet\n"
                         "model = LeNet(num_classes={num_classes})\n"
                         "model.load_state_dict({load}, strict=True)\nmodel.eval()"),
    "shapes": ("from engine.structured.rebuild import load_structured   # data only, no pickle\n"
               "model = load_structured('{name}')   # reads the state_dict it names beside it"),
    "torchscript": "import torch\nmodel = torch.jit.load('{name}')\nmodel.eval()",
    "onnx": ("import onnxruntime\nsession = onnxruntime.InferenceSession('{name}')\n"
             "logits = session.run(None, {{session.get_inputs()[0].name: x.numpy()}})[0]"),
    "pickle": ("import torch\n# runs code from the file: only for files you trust\n"
               "model = torch.load('{name}', weights_only=False)\nmodel.eval()"),
}


class VerifyError(ValueError):
    pass


@dataclass
class FormatCheck:
    kind: str
    path: str
    max_abs_diff: Optional[float] = None
    latency_ms: Optional[float] = None
    snippet: str = ""
    error: Optional[str] = None       # the format failed to load or run, or its outputs differ
    skipped: Optional[str] = None     # why this format could not be checked here

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class VerifyReport:
    checks: list[FormatCheck] = field(default_factory=list)
    tolerance: float = TOLERANCE

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def lines(self) -> list[str]:
        out = []
        for c in self.checks:
            name = Path(c.path).name
            if c.skipped:
                out.append(f"{c.kind:<12} {name}: not checked ({c.skipped})")
            elif c.error:
                out.append(f"{c.kind:<12} {name}: FAILED: {c.error}")
            else:
                out.append(f"{c.kind:<12} {name}: max |diff| {c.max_abs_diff:.2e}, "
                           f"latency {c.latency_ms:.3f} ms (batch of the check, 1 thread)")
        return out


def _snippet(kind: str, path: Path, arch: Optional[str], num_classes: int) -> str:
    load = (f"safetensors.torch.load_file('{path.name}')" if path.suffix == ".safetensors"
            else f"torch.load('{path.name}', weights_only=True)")
    key = kind
    if kind == "state_dict":
        key = "state_dict_lenet" if arch == "lenet" else "state_dict_torchvision"
    text = SNIPPETS[key].format(arch=arch, num_classes=num_classes, load=load, name=path.name)
    if kind == "state_dict" and path.suffix == ".safetensors":
        text = "import safetensors.torch\n" + text
    return text


def _state_dict_skip(arch: Optional[str], channel_pruned: bool) -> Optional[str]:
    from engine.models.architectures import architecture_names
    if channel_pruned:
        return "channels were removed, so it loads only through the shapes JSON (checked there)"
    if not arch or arch not in architecture_names():
        return "the model has no stock architecture to load it into (your own code or a " \
               "Hugging Face model): load it into your class with strict=True"
    return None


def verify_export(model: nn.Module, written: list[Path], kinds: list[str], example_input,
                  arch: Optional[str], num_classes: int, channel_pruned: bool = False,
                  runs: int = 10, progress=None) -> VerifyReport:
    """Loads each of ``kinds`` (files as :func:`engine.structured.exporters.export_paths` names them
    beside ``written[0]``) in a fresh process and compares its outputs with ``model``'s."""
    from safetensors.torch import load_file, save_file
    if not written:
        raise VerifyError("nothing was exported to verify")
    targets = export_paths(Path(written[0]), kinds)
    args = list(example_input) if isinstance(example_input, (tuple, list)) else [example_input]
    live = _plain_copy(model).cpu().eval()
    with torch.no_grad():
        reference = forward_batch(live, args if len(args) > 1 else args[0])
    reference = getattr(reference, "logits", reference).detach().float()
    report = VerifyReport()
    with tempfile.TemporaryDirectory(prefix="prunelab-verify-") as tmp:
        inputs_file = Path(tmp) / "inputs.safetensors"
        save_file({f"input_{i}": a.detach().cpu().contiguous() for i, a in enumerate(args)},
                  str(inputs_file))
        for step, (kind, path) in enumerate(targets.items()):
            if progress is not None:
                from engine.progress import Progress
                progress(Progress("Verifying export", step, len(targets), message=path.name))
            check = FormatCheck(kind, str(path), snippet=_snippet(kind, path, arch, num_classes)
                                if kind in SNIPPETS or kind == "state_dict" else "")
            report.checks.append(check)
            skip = _state_dict_skip(arch, channel_pruned) if kind == "state_dict" else None
            if kind == "onnx":
                try:
                    import onnxruntime  # noqa: F401
                except ImportError:
                    skip = "onnxruntime is not installed here (pip install onnxruntime)"
            if skip:
                check.skipped = skip
                continue
            outputs_file = Path(tmp) / f"{kind}.out.safetensors"
            try:
                done = subprocess.run(
                    [sys.executable, "-c", _RUNNER, kind, str(path.resolve()), str(inputs_file),
                     str(outputs_file), str(runs), arch or "", str(num_classes)],
                    cwd=tmp, capture_output=True, text=True, timeout=VERIFY_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                check.error = f"loading and running it took over {VERIFY_TIMEOUT_S} s"
                continue
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                check.error = f"it does not load and run in a fresh process: {last[:200]}"
                continue
            check.latency_ms = json.loads(done.stdout.strip().splitlines()[-1])["latency_ms"]
            loaded = load_file(str(outputs_file))["output"].float()
            if loaded.shape != reference.shape:
                check.error = (f"its output has shape {tuple(loaded.shape)}, the live model's "
                               f"{tuple(reference.shape)}")
                continue
            check.max_abs_diff = float((loaded - reference).abs().max())
            allowed = TOLERANCE * max(1.0, float(reference.abs().max()))
            if not check.max_abs_diff <= allowed:
                check.error = (f"its outputs differ from the live model's by up to "
                               f"{check.max_abs_diff:.3g} (allowed {allowed:.1g})")
    return report

"""Channel removal on every architecture the issue lists: prune, run with the expected output shape,
export, rebuild from state_dict + shapes JSON (no pickle) with identical outputs; TorchScript and
ONNX (onnxruntime) within 1e-4 for a subset (export is the slow part: resnet18 covers residual
blocks, mobilenet_v3_small depthwise convs and squeeze-excitation, lenet the demo model)."""
import json

import numpy as np
import pytest
import torch

from engine.config import StructuredSpec
from engine.models.architectures import build_architecture
from engine.structured.exporters import export_all
from engine.structured.rebuild import load_structured
from engine.structured.remove import prune_channels

from engine.structured.remove import TESTED_ARCHITECTURES

ISSUE_ARCHS = {"resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "vgg16_bn",
               "efficientnet_b0", "regnet_y_400mf"}
ARCHS = list(TESTED_ARCHITECTURES)


def test_every_architecture_the_issue_lists_is_tested():
    assert ISSUE_ARCHS <= set(ARCHS)
TRACED_EXPORTS = {"resnet18", "mobilenet_v3_small", "lenet"}


def calibrated(arch: str) -> tuple[torch.nn.Module, torch.Tensor]:
    """Random-init model whose BatchNorm statistics come from data, so outputs are not ~0 and a
    1e-4 comparison means something; and a 2-sample input."""
    torch.manual_seed(0)
    model = build_architecture(arch, 10)
    shape = (1, 28, 28) if arch == "lenet" else (3, 64, 64)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, *shape))
    return model.eval(), torch.randn(2, *shape)


@pytest.mark.parametrize("arch", ARCHS)
def test_architecture_prunes_runs_exports_and_reloads(arch, tmp_path):
    model, x = calibrated(arch)
    params_before = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        original_out = model(x)
    spec = StructuredSpec(enabled=True, ratio=0.5, importance="l1", round_to=None if arch == "lenet" else 8)
    outcome = prune_channels(model, x[:1], spec)
    pruned = outcome.model

    # the original is untouched; the copy is smaller and still answers 10 classes
    assert sum(p.numel() for p in model.parameters()) == params_before
    with torch.no_grad():
        assert torch.equal(model(x), original_out)
        out = pruned(x)
    assert outcome.output_shape == (1, 10) and out.shape == (2, 10)
    assert float(out.abs().max()) > 1e-3, "outputs too small for the comparisons below to mean anything"
    assert outcome.params_after == sum(p.numel() for p in pruned.parameters())
    assert outcome.params_after < 0.7 * params_before
    assert outcome.macs_reduction > 1.7
    classifier = next(w for w in outcome.layers if w.name == outcome.protected[0])
    assert classifier.out_after == classifier.out_before == 10
    assert outcome.changed_layers
    if spec.round_to:
        assert all(w.out_after % 8 == 0 for w in outcome.changed_layers
                   if w.out_after != w.out_before and w.kind.startswith("Conv"))

    kinds = ["shapes"] + (["torchscript", "onnx"] if arch in TRACED_EXPORTS else [])
    paths = export_all(pruned, tmp_path / f"{arch}.pt", kinds, x[:1], arch=arch, num_classes=10,
                       input_shape=tuple(x.shape[1:]))
    assert [p.name for p in paths] == [f"{arch}.pt", f"{arch}.shapes.json"] + (
        [f"{arch}.torchscript.pt", f"{arch}.onnx"] if arch in TRACED_EXPORTS else [])
    shapes = json.loads((tmp_path / f"{arch}.shapes.json").read_text())
    assert shapes["arch"] == arch and shapes["state_dict"] == f"{arch}.pt"

    rebuilt = load_structured(tmp_path / f"{arch}.shapes.json")
    with torch.no_grad():
        assert torch.equal(rebuilt(x), out)
    assert sum(p.numel() for p in rebuilt.parameters()) == outcome.params_after

    if arch in TRACED_EXPORTS:
        scripted = torch.jit.load(str(tmp_path / f"{arch}.torchscript.pt"))
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), out, atol=1e-4, rtol=0)
        import onnxruntime as ort
        session = ort.InferenceSession(str(tmp_path / f"{arch}.onnx"), providers=["CPUExecutionProvider"])
        onnx_out = session.run(None, {"input": x.numpy()})[0]   # batch 2: the batch axis is dynamic
        np.testing.assert_allclose(onnx_out, out.numpy(), atol=1e-4, rtol=0)

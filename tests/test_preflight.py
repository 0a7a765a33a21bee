"""The pre-flight check and the dependency-group preview: what channel removal will do, before it
is done, on models it can and cannot fully prune."""
import json

import torch
from torch import nn

from engine.config import StructuredSpec
from engine.models.architectures import build_architecture
from engine.structured.preflight import group_of, plan_groups, preflight
from engine.structured.remove import prune_channels
from tests.test_structured import X28, ConcatIntoGrouped, FixedSplit, bn_net


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_preflight_names_a_fixed_split_with_a_hint_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = FixedSplit().eval()
    before = _state(model)
    seen = []
    report = preflight(model, X28, StructuredSpec(ratio=0.5), progress=seen.append)
    kept = report.by_status("kept whole")
    assert [g.root for g in kept] == ["dw.0"]
    assert kept[0].reason == "a split with sizes fixed in forward"
    assert "x.chunk" in kept[0].hint and "exclude dw.0" in kept[0].hint
    assert "split_with_sizes" in kept[0].error
    assert [g.root for g in report.by_status("prunable")] == ["pw"]
    assert [(g.root, g.reason) for g in report.by_status("protected")] == [
        ("head", "the classifier: its outputs are the class scores")]
    assert "dw.0: a split with sizes fixed in forward" in report.summary
    assert seen and all(p.stage == "Pre-flight check" for p in seen)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_preflight_names_a_concatenation_into_a_grouped_conv():
    torch.manual_seed(0)
    report = preflight(ConcatIntoGrouped().eval(), X28, StructuredSpec(ratio=0.5))
    kept = report.by_status("kept whole")
    assert [g.root for g in kept] == ["a.0"]
    assert kept[0].reason == "a concatenation feeding a grouped convolution"
    assert "grouped.0 (in)" in kept[0].members
    assert {g.root for g in report.by_status("prunable")} == {"grouped.0", "b.0", "stem.0"}
    # the check agrees with what removal then does
    outcome = prune_channels(ConcatIntoGrouped().eval(), X28, StructuredSpec(ratio=0.5))
    assert list(outcome.kept_whole) == ["a.0"]


def test_preflight_lists_excluded_layers_as_protected_and_notes_attention():
    report = preflight(bn_net(), X28, StructuredSpec(ratio=0.5, exclude=["wide.0"]))
    assert {g.root: g.reason for g in report.by_status("protected")}["wide.0"] == \
        "excluded by structured.exclude"
    assert not report.by_status("kept whole")

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(8, 16)
            self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
            self.head = nn.Linear(16, 10)

        def forward(self, x):
            h = self.embed(x)
            return self.head(self.attn(h, h, h)[0].mean(1))

    report = preflight(Attention().eval(), torch.randn(1, 4, 8))
    assert any("nn.MultiheadAttention" in n and "attn" in n for n in report.notes)


def test_group_preview_of_a_resnet_downsample_block_matches_the_removal():
    torch.manual_seed(0)
    model = build_architecture("resnet18", 10).eval()
    example = torch.randn(1, 3, 32, 32)
    spec = StructuredSpec(ratio=0.5)
    plan = group_of(plan_groups(model, example, spec), "layer2.0.downsample.0")
    # the downsample's output is added to layer2.0's and layer2.1's residual outputs
    assert {"layer2.0.downsample.0", "layer2.0.downsample.1", "layer2.0.conv2", "layer2.0.bn2",
            "layer2.1.conv2", "layer2.1.bn2", "layer2.1.conv1", "layer3.0.conv1",
            "layer3.0.downsample.0"} == set(plan.coupled())
    removed = plan.remove["layer2.0.downsample.0"]
    assert len(removed) == 64 and plan.remove["layer2.1.conv2"] == removed
    assert group_of(plan_groups(model, example, spec), "layer2.1.conv1").root != plan.root
    # what the preview says would go is what removal then removes, in original channel numbers
    outcome = prune_channels(model, example, spec)
    assert outcome.removed_channels["layer2.0.downsample.0"] == removed
    assert outcome.removed_channels["layer2.0.conv2"] == removed
    kept = [c for c in range(128) if c not in removed]
    kept_in = [c for c in range(64) if c not in outcome.removed_channels["conv1"]]  # layer1's group
    assert torch.equal(outcome.model.layer2[0].downsample[0].weight,
                       model.layer2[0].downsample[0].weight[kept][:, kept_in])


def test_cli_preflight_prints_every_group_and_writes_json(tmp_path, capsys):
    from engine.cli import main
    from engine.paths import RECIPES
    out = tmp_path / "preflight.json"
    assert main([str(RECIPES / "lenet_structured.json"), "--preflight", "--quiet",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pre-flight: 4 group(s) prunable, 0 kept whole, 1 protected" in text
    assert "[prunable] conv1 (6 channels) with conv2 (in)" in text
    document = json.loads(out.read_text())
    assert [g["root"] for g in document["groups"]] == ["fc2", "fc1", "conv2", "conv1", "fc3"]

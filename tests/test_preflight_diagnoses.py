"""The pre-flight's "attention head count" and "custom layer" diagnoses, on small models that
really break when their channels are removed: a self-attention block that reshapes by
``self.num_heads``, and a layer of its own that mixes channels with a parameter torch-pruning has
no rule for."""
import torch
from torch import nn

from engine.config import StructuredSpec
from engine.structured.preflight import preflight
from engine.structured.remove import prune_channels
from tests.test_preflight import _state


class SelfAttention(nn.Module):
    """A plain-code attention block: its head count lives in an attribute and shapes a reshape."""
    def __init__(self, dim: int = 16, heads: int = 4) -> None:
        super().__init__()
        self.num_heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attention = (q @ k.transpose(-2, -1)).softmax(-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(b, n, c))


class TinyTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.attn = SelfAttention()
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.attn(h)
        return self.head(h.mean(1))


class ChannelMix(nn.Module):
    """A custom layer: a channels x channels matrix applied with einsum, no nn.Conv/Linear."""
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels, channels) / channels)

    def forward(self, x):
        return torch.einsum("bchw,dc->bdhw", x, self.weight)


class WithCustomLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU())
        self.mix = ChannelMix(8)
        self.conv = nn.Sequential(nn.Conv2d(8, 16, 3), nn.ReLU())
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(self.conv(self.mix(self.stem(x))).mean((2, 3)))


TOKENS = torch.randn(1, 4, 8)
IMAGE = torch.randn(1, 1, 28, 28)


def test_preflight_keeps_a_head_count_attribute_group_whole_and_says_why():
    torch.manual_seed(0)
    model = TinyTransformer().eval()
    before = _state(model)
    # the model really breaks: a plain removal cannot even rank the qkv channels
    report = preflight(model, TOKENS, StructuredSpec(ratio=0.5))
    kept = {g.root: g for g in report.by_status("kept whole")}
    # qkv's own outputs, and the embedding width the residual ties to qkv's input
    assert set(kept) == {"attn.qkv", "embed"}
    for group in kept.values():
        assert group.reason == "an attention head count stored in an attribute"
        assert "num_heads" in group.hint and f"exclude {group.root}" in group.hint
        assert group.error   # the library's own words are kept for the log
    assert "attn.proj (in)" in kept["attn.qkv"].members
    assert "attn.qkv: an attention head count stored in an attribute" in report.summary
    assert [g.root for g in report.by_status("protected")] == ["head"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the removal itself then keeps the same layers whole instead of failing
    outcome = prune_channels(model, TOKENS, StructuredSpec(ratio=0.5))
    assert set(outcome.kept_whole) == {"attn.qkv", "embed"}
    assert outcome.model(TOKENS).shape == (1, 10)


def test_preflight_names_a_custom_layer_torch_pruning_cannot_slice():
    torch.manual_seed(0)
    model = WithCustomLayer().eval()
    before = _state(model)
    report = preflight(model, IMAGE, StructuredSpec(ratio=0.5))
    kept = report.by_status("kept whole")
    assert [g.root for g in kept] == ["stem.0"]
    assert kept[0].reason == "a custom layer torch-pruning cannot slice"
    assert kept[0].hint.startswith("mix holds its own parameters")
    assert "customized_pruners" in kept[0].hint and "exclude stem.0" in kept[0].hint
    assert "expected input" in kept[0].error   # the forward pass broke after the removal
    assert [g.root for g in report.by_status("prunable")] == ["conv.0"]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    outcome = prune_channels(model, IMAGE, StructuredSpec(ratio=0.5))
    assert list(outcome.kept_whole) == ["stem.0"]
    assert outcome.model.conv[0].out_channels == 8 and outcome.model.stem[0].out_channels == 8

"""The BiLSTM of seed 000: packed-sequence forward, loading from a checkpoint and its JSON, pruning
every recurrent weight (reverse direction and layer 1 included), and LSTM-aware MACs."""
import copy
import shutil

import pytest
import torch

from engine.config import DataSpec, MetricsSpec, ModelSpec, PruneSpec
from engine.data.sources import load_data
from engine.metrics import comparison_table, count_macs
from engine.models.architectures import build_architecture
from engine.models.checkpoints import CheckpointError
from engine.models.sources import TEXT_DEMO_CHECKPOINT, load_model
from engine.pruning.apply import has_masks, make_permanent, prune_model
from engine.pruning.base import PruneContext
from engine.pruning.targets import group_sparsity
from engine.session import Session
from engine.text.bilstm import BiLSTMClassifier

LSTM_WEIGHTS = [f"lstm.weight_{kind}_l{layer}{suffix}" for layer in (0, 1)
                for kind in ("ih", "hh") for suffix in ("", "_reverse")]


@pytest.fixture
def bilstm():
    torch.manual_seed(0)
    return BiLSTMClassifier(vocab_size=50, emb_dim=8, hid_dim=6, num_classes=3, pad_idx=1,
                            dropout=0.0).eval()


def test_forward_uses_packed_lengths_so_padding_changes_nothing(bilstm):
    short = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 1, 1, 1]])
    a = bilstm(short, torch.tensor([3]))
    b = bilstm(padded, torch.tensor([3]))
    assert a.shape == (1, 3)
    assert torch.allclose(a, b, atol=1e-6)
    # unsorted lengths in one batch (enforce_sorted=False) give each row its own result
    batch = bilstm(torch.tensor([[5, 6, 7, 1], [8, 9, 10, 11]]), torch.tensor([3, 4]))
    assert torch.allclose(batch[0], a[0], atol=1e-6)


def test_bilstm_is_a_builtin_architecture_with_options():
    model = build_architecture("bilstm", 4, {"vocab_size": 30, "emb_dim": 4, "hid_dim": 3})
    assert isinstance(model, BiLSTMClassifier) and model.fc.out_features == 4
    with pytest.raises(ValueError, match="vocab_size"):
        build_architecture("bilstm", 4)
    with pytest.raises(ValueError, match="PruneLab's own"):
        build_architecture("resnet18", 10, {"vocab_size": 3})


@torch.no_grad()  # as evaluation runs; a grad-enabled forward leaves non-leaf masked weights
def test_pruning_every_lstm_weight_including_reverse_and_layer_1(bilstm):
    tokens, lengths = torch.tensor([[5, 6, 7, 8], [9, 10, 1, 1]]), torch.tensor([4, 2])
    before = bilstm(tokens, lengths)
    outcome = prune_model(bilstm, PruneSpec(method="l1", sparsity=0.5, include=["lstm.weight_*"]),
                          PruneContext(bilstm))
    assert sorted(outcome.sparsity) == sorted(LSTM_WEIGHTS)
    for name in LSTM_WEIGHTS:
        module_param = name.split(".", 1)[1]
        mask = getattr(bilstm.lstm, module_param + "_mask")
        assert mask.numel() - int(mask.sum()) == round(0.5 * mask.numel())
        # the module's flat weights (what the LSTM kernel reads) carry the zeros
        assert torch.count_nonzero(getattr(bilstm.lstm, module_param)) == int(mask.sum())
    masked = bilstm(tokens, lengths)
    assert not torch.allclose(before, masked)
    clone = copy.deepcopy(bilstm)  # Session.original and revert deep-copy models
    assert torch.allclose(clone(tokens, lengths), masked, atol=1e-6)
    assert make_permanent(bilstm) == 8 and not has_masks(bilstm)
    assert torch.allclose(bilstm(tokens, lengths), masked, atol=1e-6)
    assert set(bilstm.state_dict()) == set(BiLSTMClassifier(50, 8, 6, 3).state_dict())
    assert group_sparsity(bilstm, ["lstm.weight_*"]).sparsity == pytest.approx(0.5, abs=1e-3)


def test_macs_count_every_token_step_of_every_recurrent_weight(bilstm):
    length = 7
    example = (torch.randint(2, 50, (1, length)), torch.tensor([length]))
    lstm_weights = sum(p.numel() for n, p in bilstm.lstm.named_parameters() if n.startswith("weight"))
    expected = length * lstm_weights + bilstm.fc.weight.numel()
    dense, effective = count_macs(bilstm, example)
    assert dense == expected and effective == expected
    prune_model(bilstm, PruneSpec(sparsity=0.5, include=["lstm.weight_*"]), PruneContext(bilstm))
    dense2, effective2 = count_macs(bilstm, example)
    assert dense2 == expected
    assert effective2 == pytest.approx(length * lstm_weights * 0.5 + bilstm.fc.weight.numel(), rel=1e-3)


def test_demo_checkpoint_loads_with_its_vocabulary():
    loaded = load_model(ModelSpec(source="text_demo"))
    assert isinstance(loaded.model, BiLSTMClassifier)
    assert len(loaded.vocab) == loaded.model.embedding.num_embeddings
    assert loaded.class_names == ["World", "Sports", "Business", "Sci/Tech"]


def test_state_dict_without_sidecar_infers_shapes_and_takes_vocab_from_data(tmp_path):
    plain = tmp_path / "bilstm.pt"
    shutil.copy(TEXT_DEMO_CHECKPOINT, plain)  # no JSON beside it
    loaded = load_model(ModelSpec(source="state_dict", arch="bilstm", path=str(plain)))
    assert loaded.vocab is None
    reference = load_model(ModelSpec(source="text_demo")).model
    assert loaded.model.hyper_parameters["vocab_size"] == reference.embedding.num_embeddings
    session = Session.open(
        ModelSpec(source="state_dict", arch="bilstm", path=str(plain)),
        DataSpec(source="text_csv", root=str(TEXT_DEMO_CHECKPOINT.parent / "text_demo"),
                 vocab_path=str(TEXT_DEMO_CHECKPOINT.with_suffix(".json")), max_eval_samples=200),
        MetricsSpec(measure_latency=False))
    demo = Session.open(ModelSpec(source="text_demo"), DataSpec(source="text_demo", max_eval_samples=200),
                        MetricsSpec(measure_latency=False))
    assert session.measure_original().accuracy == demo.measure_original().accuracy
    with pytest.raises(CheckpointError, match="size mismatch for embedding.weight"):
        load_model(ModelSpec(source="state_dict", arch="bilstm", path=str(plain),
                             arch_options={"vocab_size": 10}))


def test_latency_row_states_the_token_length():
    session = Session.open(ModelSpec(source="text_demo"),
                           DataSpec(source="text_demo", max_eval_samples=64, example_tokens=64),
                           MetricsSpec(latency_runs=2, latency_warmup=0))
    metrics = session.measure_original()
    assert metrics.input_note == "64 tokens"
    labels = [row.metric for row in comparison_table(metrics, metrics)]
    assert "Latency (batch 1, 64 tokens, cpu)" in labels


def test_word_vectors_initialise_the_embedding_through_the_session(tmp_path):
    vocab = load_data(DataSpec(source="text_demo")).vocab
    word = vocab.itos[10]
    (tmp_path / "w.vec").write_text(f"1 48\n{word} " + " ".join(["0.5"] * 48) + "\n")
    messages = []
    session = Session.open(ModelSpec(source="text_demo"),
                           DataSpec(source="text_demo", vectors_path=str(tmp_path / "w.vec"),
                                    max_eval_samples=16),
                           MetricsSpec(measure_latency=False), log=messages.append)
    assert torch.all(session.model.embedding.weight[10] == 0.5)
    assert torch.all(session.original.embedding.weight[10] == 0.5)
    assert any("initialised 1 of" in m for m in messages)


def test_pruned_export_reopens_with_its_vocabulary_and_never_overwrites_the_source_json(tmp_path):
    from engine.config import ExportSpec
    source = tmp_path / "mine.pt"
    shutil.copy(TEXT_DEMO_CHECKPOINT, source)
    shutil.copy(TEXT_DEMO_CHECKPOINT.with_suffix(".json"), source.with_suffix(".json"))
    data = DataSpec(source="text_demo", max_eval_samples=200)
    spec = ModelSpec(source="state_dict", arch="bilstm", path=str(source))
    session = Session.open(spec, data, MetricsSpec(measure_latency=False))
    session.prune(PruneSpec(method="l1", sparsity=0.95, include=["fc.weight"]))
    pruned = session.measure_current()
    original_json = source.with_suffix(".json").read_text()
    with pytest.raises(ValueError, match="the vocabulary file to .*mine.json: it is one of the "
                                         "model's source files"):
        session.export(ExportSpec(path=str(tmp_path / "mine.safetensors"), report=False))
    assert not (tmp_path / "mine.safetensors").exists()
    paths = session.export(ExportSpec(path=str(tmp_path / "pruned.pt"), report=False))
    assert tmp_path / "pruned.json" in paths
    assert source.with_suffix(".json").read_text() == original_json
    reopened = Session.open(ModelSpec(source="state_dict", arch="bilstm", path=str(tmp_path / "pruned.pt")),
                            data, MetricsSpec(measure_latency=False))
    assert reopened.measure_original().accuracy == pruned.accuracy
    assert reopened.loaded.vocab.itos == session.loaded.vocab.itos


def test_text_model_with_image_data_is_refused_in_plain_words():
    with pytest.raises(ValueError, match="is a text model: open text data"):
        Session.open(ModelSpec(source="text_demo"), DataSpec(source="demo"))


def test_finetuning_a_pruned_bilstm_keeps_lstm_zeros():
    from engine.config import FinetuneSpec
    session = Session.open(ModelSpec(source="text_demo"), DataSpec(source="text_demo", max_eval_samples=64),
                           MetricsSpec(measure_latency=False))
    session.prune(PruneSpec(method="l1", scope="global", sparsity=0.7,
                            include=["lstm.weight_*", "embedding.weight"]))
    zeros_before = group_sparsity(session.model, ["lstm.weight_*"]).zeros
    before = session.model.lstm.weight_hh_l1_orig.detach().clone()
    result = session.finetune(FinetuneSpec(epochs=1, optimizer="adam", lr=1e-3, batch_size=32,
                                           max_batches_per_epoch=4, device="cpu"))
    assert len(result.epochs) == 1
    assert not torch.equal(before, session.model.lstm.weight_hh_l1_orig)  # it trained ...
    assert group_sparsity(session.model, ["lstm.weight_*"]).zeros == zeros_before  # ... masks held

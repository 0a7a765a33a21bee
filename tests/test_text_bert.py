"""Seed 002 on a tiny BERT built here (random BertConfig, 12 layers, no download): global L1 30%
over the twelve attention query weights, made permanent, group sparsity 0.3000, 5x5 corner."""
import importlib.util
import json
import sys

import pytest
import torch

from engine.config import DataSpec, MetricsSpec, ModelSpec, Recipe
from engine.paths import RECIPES, ROOT
from engine.pruning.apply import has_masks
from engine.pruning.targets import group_sparsity, select_targets
from engine.session import Session

transformers = pytest.importorskip("transformers", reason="the optional 'bert' extra is not installed")

QUERY = "bert.encoder.layer.*.attention.self.query.weight"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("make_tiny_bert", ROOT / "scripts" / "make_tiny_bert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    folder = tmp_path_factory.mktemp("tiny_bert")
    return module.make_tiny_bert(folder, train_rows=64, test_rows=96, epochs=0, log=lambda _m: None)


def seed002_recipe(folder, tmp_path) -> Recipe:
    data = json.loads((RECIPES / "bert_seed002_query_l1_30.json").read_text())
    data["model"]["path"] = str(folder)
    data["data"]["root"] = str(folder / "data")
    data["export"]["path"] = str(tmp_path / "bert_pruned.pt")
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(data))
    return path


def test_seed002_recipe_on_tiny_bert(tiny_bert, tmp_path, capsys):
    from engine.cli import main as cli_main
    report = tmp_path / "result.json"
    rc = cli_main([str(seed002_recipe(tiny_bert, tmp_path)), "--no-latency", "--quiet",
                   "--json", str(report)])
    out = capsys.readouterr().out
    assert rc == 0, out
    result = json.loads(report.read_text())
    group = result["group_sparsity"]
    assert len(group["names"]) == 12
    assert f"{group['sparsity']:.4f}" == "0.3000"
    assert "weights): 0.3000" in out
    rows = {row["metric"]: row for row in result["table"]}
    for metric in ("Accuracy", "Macro F1"):
        assert rows[metric]["original"] is not None and rows[metric]["pruned"] is not None
    before = torch.tensor(result["corner"]["before"])
    after = torch.tensor(result["corner"]["after"])
    assert before.shape == (5, 5) and (before != 0).all()
    kept = after != 0
    assert (~kept).any()  # some of the corner was pruned ...
    assert torch.equal(after[kept], before[kept])  # ... and the rest is untouched
    assert "top-left 5x5) before:" in out

    # make-permanent: the export is a plain Hugging Face state_dict with no masks left
    state = torch.load(tmp_path / "bert_pruned.pt", weights_only=True)
    assert not any(k.endswith(("_orig", "_mask")) for k in state)
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(str(tiny_bert),
                                                                         local_files_only=True)
    hf.load_state_dict(state, strict=True)
    zeros = sum(int((hf.bert.encoder.layer[i].attention.self.query.weight == 0).sum()) for i in range(12))
    assert zeros == round(0.3 * 12 * hf.config.hidden_size ** 2)


def test_bert_session_prunes_the_query_group_and_leaves_no_masks(tiny_bert):
    recipe = Recipe.load(RECIPES / "bert_seed002_query_l1_30.json")
    session = Session.open(ModelSpec(source="hf", path=str(tiny_bert)),
                           DataSpec(source="hf_tsv", root=str(tiny_bert / "data"), text_max_len=32),
                           MetricsSpec(measure_latency=False))
    names = [t.name for t in select_targets(session.model, [QUERY])]
    assert names == [f"bert.encoder.layer.{i}.attention.self.query.weight" for i in range(12)]
    assert session.data.num_classes == 4 and session.data.input_note.endswith("tokens")
    session.prune(recipe.prune)
    assert not has_masks(session.model)
    assert f"{group_sparsity(session.model, [QUERY]).sparsity:.4f}" == "0.3000"
    assert group_sparsity(session.original, [QUERY]).zeros == 0
    # the key weights were not in the group and stay dense
    assert group_sparsity(session.model, ["bert.encoder.layer.*.attention.self.key.weight"]).zeros == 0


def test_bert_with_builtin_tokenizer_data_is_refused(tiny_bert):
    with pytest.raises(ValueError, match="hf_tsv"):
        Session.open(ModelSpec(source="hf", path=str(tiny_bert)),
                     DataSpec(source="text_tsv", root=str(tiny_bert / "data")))


def test_missing_model_folder_says_how_to_make_one(tmp_path):
    from engine.models.sources import load_model
    with pytest.raises(FileNotFoundError, match="make_tiny_bert.py"):
        load_model(ModelSpec(source="hf", path=str(tmp_path / "nowhere")))


def test_missing_transformers_gives_the_install_hint(monkeypatch):
    from engine.text.bert import MissingExtraError, require_transformers
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingExtraError, match=r"pip install -e '\.\[bert\]'"):
        require_transformers()


def test_bin_weights_load_like_safetensors(tiny_bert, tmp_path):
    import shutil
    from safetensors.torch import load_file
    from engine.text.bert import load_hf_classifier
    folder = tmp_path / "bin_model"
    shutil.copytree(tiny_bert, folder)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    from_bin, _, _ = load_hf_classifier(folder)
    from_safetensors, _, names = load_hf_classifier(tiny_bert)
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    with torch.no_grad():
        assert torch.allclose(from_bin(ids, torch.ones_like(ids)),
                              from_safetensors(ids, torch.ones_like(ids)))
    assert names == ["World", "Sports", "Business", "Sci/Tech"]
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(ValueError, match="has no weights"):
        load_hf_classifier(folder)


def test_hf_tsv_data_needs_a_tokenizer_and_takes_one_from_a_folder(tiny_bert):
    from engine.data.sources import DataError, load_data
    with pytest.raises(DataError, match="tokenizer_path"):
        load_data(DataSpec(source="hf_tsv", root=str(tiny_bert / "data")))
    data = load_data(DataSpec(source="hf_tsv", root=str(tiny_bert / "data"), tokenizer_path=str(tiny_bert),
                              text_max_len=16, example_tokens=12))
    ids, mask, labels = next(iter(data.loader("test", 4)))
    assert ids.shape[1] <= 16 and mask.shape == ids.shape and labels.shape == (4,)
    example_ids, example_mask = data.example_input(2)
    assert example_ids.shape == (2, 12) and bool(example_mask.all())

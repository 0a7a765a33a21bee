"""Text data: the built-in tokenizer and vocabulary, AG_NEWS CSV and TSV readers, padding collate,
.vec word vectors, and the text DataSpec sources."""
import json

import pytest
import torch
from torch import nn

from engine.config import DataSpec, Recipe, RecipeError
from engine.data.sources import DataError, load_data
from engine.metrics import split_batch
from engine.text.datasets import PadCollate, read_ag_news_csv, read_split, read_tsv, token_stream
from engine.text.tokenizer import SPECIALS, Vocab, tokenize
from engine.text.vectors import VectorsError, fill_embedding, read_vec


def test_tokenizer_lowercases_and_splits_punctuation():
    assert tokenize("Stocks rose 3% in Tokyo's market.") == [
        "stocks", "rose", "3", "%", "in", "tokyo's", "market", "."]
    assert tokenize("E-mail,  spam!") == ["e-mail", ",", "spam", "!"]
    assert tokenize("   ") == []


def test_vocab_specials_frequency_order_and_unknowns():
    vocab = Vocab.build([["b", "a", "b"], ["c", "b", "a"], ["d"]])
    assert vocab.itos[:4] == list(SPECIALS)
    assert vocab.itos[4:] == ["b", "a", "c", "d"]  # by count, ties in first-seen order
    assert vocab["<unk>"] == 0 and vocab.pad_index == 1
    assert vocab["never-seen"] == vocab.unk_index
    assert vocab.encode(["a", "zzz"]) == [5, 0]


def test_vocab_min_freq_max_size_and_json_round_trip(tmp_path):
    lists = [["a"] * 3 + ["b"] * 2 + ["c"]]
    assert Vocab.build(lists, min_freq=2).itos[4:] == ["a", "b"]
    assert Vocab.build(lists, max_size=5).itos == list(SPECIALS) + ["a"]
    vocab = Vocab.build(lists)
    path = tmp_path / "v.json"
    path.write_text(json.dumps({"format": "x", "vocab": vocab.to_json()}))
    assert Vocab.load(path).itos == vocab.itos
    with pytest.raises(ValueError, match="specials"):
        Vocab(["a", "b"])
    with pytest.raises(ValueError, match="max_size"):
        Vocab.build(lists, max_size=4)


def test_ag_news_csv_reader(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('"3","Oil, gas up","Prices rose\\\\ sharply."\n"1","Talks","Peace, at last"\n\n')
    samples = read_ag_news_csv(path)
    assert samples.labels == [2, 0]  # 1-based -> 0-based
    assert samples.texts[0].startswith("Oil, gas up Prices rose")
    path.write_text('"0","bad label","x"\n')
    with pytest.raises(DataError, match="line 1"):
        read_ag_news_csv(path)


def test_tsv_reader_with_class_names(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("some text\twith a tab\t1\nother text\t0\nnamed\tSports\n")
    samples = read_tsv(path, ["World", "Sports"])
    assert samples.texts == ["some text\twith a tab", "other text", "named"]
    assert samples.labels == [1, 0, 1]
    path.write_text("no tab here\n")
    with pytest.raises(DataError, match="text<TAB>label"):
        read_tsv(path)


def test_folder_and_single_file_splits(tmp_path):
    lines = "".join(f"text number {i}\t{i % 2}\n" for i in range(20))
    (tmp_path / "all.tsv").write_text(lines)
    train, test, names = read_split(tmp_path / "all.tsv", read_tsv, (".tsv",))
    assert (len(train.texts), len(test.texts), names) == (16, 4, None)
    again = read_split(tmp_path / "all.tsv", read_tsv, (".tsv",))
    assert again[1].texts == test.texts  # the held-out part is fixed
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "train.txt").write_text(lines)
    (folder / "dev.txt").write_text("".join(lines.splitlines(True)[:3]))
    (folder / "class.txt").write_text("even\nodd\n")
    train, test, names = read_split(folder, read_tsv, (".tsv", ".txt"))
    assert len(train.texts) == 20 and names == ["even", "odd"]
    with pytest.raises(DataError, match="train file and a test file"):
        read_split(tmp_path, read_tsv, (".csv",))


def test_pad_collate_pads_with_pad_index_and_puts_label_last():
    collate = PadCollate(pad_index=1)
    tokens, lengths, labels = collate([(torch.tensor([5, 6, 7]), 2), (torch.tensor([8]), 0)])
    assert tokens.tolist() == [[5, 6, 7], [8, 1, 1]]
    assert lengths.tolist() == [3, 1] and labels.tolist() == [2, 0]
    inputs, y = split_batch((tokens, lengths, labels))
    assert isinstance(inputs, tuple) and len(inputs) == 2 and y is labels
    ids, mask, _ = PadCollate(0, mask=True)([(torch.tensor([5, 6]), 1), (torch.tensor([7]), 0)])
    assert mask.tolist() == [[1, 1], [1, 0]] and ids.tolist() == [[5, 6], [7, 0]]


def test_token_stream_uses_real_tokens_only():
    ids = [torch.tensor([4, 5]), torch.tensor([6, 7, 8])]
    assert token_stream(ids, 4).tolist() == [4, 5, 6, 7]
    assert token_stream(ids, 7).tolist() == [4, 5, 6, 7, 8, 4, 5]


def test_vec_file_fills_known_rows_and_keeps_padding_zero(tmp_path):
    vec = tmp_path / "w.vec"
    vec.write_text("3 2\nhello 1.0 2.0\nWorld 3.0 4.0\nunused 9 9\n")
    dim, vectors = read_vec(vec)
    assert dim == 2 and set(vectors) == {"hello", "World", "unused"}
    vocab = Vocab.build([["hello", "world", "other"]])
    embedding = nn.Embedding(len(vocab), 2, padding_idx=vocab.pad_index)
    before = embedding.weight.detach().clone()
    fill = fill_embedding(embedding, vocab, vec)
    assert fill.found == 2  # "world" matched "World" case-insensitively
    w = embedding.weight.detach()
    assert w[vocab["hello"]].tolist() == [1.0, 2.0] and w[vocab["world"]].tolist() == [3.0, 4.0]
    assert torch.equal(w[vocab["other"]], before[vocab["other"]])
    assert w[vocab.pad_index].abs().sum() == 0
    headerless = tmp_path / "h.vec"
    headerless.write_text("hello 1 2 3\n")
    with pytest.raises(VectorsError, match="3-d vectors but the embedding is 2-d"):
        fill_embedding(embedding, vocab, headerless)
    (tmp_path / "bad.vec").write_text("a 1 2\nb 1\n")
    with pytest.raises(VectorsError, match="line 2"):
        read_vec(tmp_path / "bad.vec")


def test_text_demo_source_batches_and_example_input():
    data = load_data(DataSpec(source="text_demo"))
    assert data.num_classes == 4 and data.class_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert len(data.train) == 2700 and len(data.val) == 300 and len(data.test) == 800
    # every split is batched with padding, the held-out validation one included
    val_tokens, val_lengths, _ = next(iter(data.loader("val", 8)))
    assert val_tokens.shape[1] == int(val_lengths.max())
    tokens, lengths, labels = next(iter(data.loader("test", 8)))
    assert tokens.shape[0] == 8 and tokens.shape[1] == int(lengths.max())
    for row, n in zip(tokens, lengths):
        assert (row[n:] == data.vocab.pad_index).all() and (row[:n] != data.vocab.pad_index).all()
    example = data.example_input(3)
    assert example[0].shape == (3, data.example_tokens) and example[1].tolist() == [data.example_tokens] * 3
    assert data.input_note == f"{data.example_tokens} tokens"
    fixed = load_data(DataSpec(source="text_demo", example_tokens=64, text_max_len=10))
    assert fixed.example_input(1)[0].shape == (1, 64)
    assert max(len(x) for x, _ in fixed.train) == 10


def test_text_csv_folder_builds_vocab_from_training_split(tmp_path):
    (tmp_path / "train.csv").write_text('"1","alpha beta","gamma"\n"2","delta","beta"\n')
    (tmp_path / "test.csv").write_text('"2","beta unknownword",""\n')
    data = load_data(DataSpec(source="text_csv", root=str(tmp_path), vocab_min_freq=1))
    assert data.num_classes == 2 and "beta" in data.vocab and "unknownword" not in data.vocab
    assert "vocabulary built from the training split" in data.description


def test_text_data_spec_validation():
    with pytest.raises(RecipeError, match="data.root"):
        DataSpec(source="text_csv").validate()
    with pytest.raises(RecipeError, match="text data only"):
        DataSpec(source="demo", vocab_path="v.json").validate()
    with pytest.raises(RecipeError, match="example_tokens"):
        DataSpec(source="text_demo", example_tokens=0).validate()
    recipe = Recipe.from_dict({"data": {"source": "text_tsv", "root": "d", "text_max_len": 32,
                                        "vocab_path": "v.json", "vectors_path": "w.vec"}})
    assert recipe.data.text_max_len == 32
    with pytest.raises(RecipeError, match="unknown key"):
        Recipe.from_dict({"data": {"source": "text_tsv", "root": "d", "max_len": 3}})


def test_recipe_paths_for_text_resolve_relative_to_the_recipe(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"data": {"source": "text_tsv", "root": "data",
                                         "vocab_path": "v.json", "vectors_path": "w.vec"}}))
    recipe = Recipe.load(path)
    assert recipe.data.vocab_path == str(tmp_path / "v.json")
    assert recipe.data.vectors_path == str(tmp_path / "w.vec")


def test_every_text_source_has_help_and_text_models_suggest_their_data(tmp_path):
    from engine.config import DATA_SOURCES, MODEL_SOURCES, TEXT_DATA_SOURCES
    from engine.text import DATA_SOURCE_HELP, MODEL_SOURCE_HELP
    from engine.text.sources import suggested_data
    assert set(TEXT_DATA_SOURCES) == set(DATA_SOURCE_HELP) and set(TEXT_DATA_SOURCES) <= set(DATA_SOURCES)
    assert set(MODEL_SOURCE_HELP) <= set(MODEL_SOURCES)
    assert suggested_data("text_demo").source == "text_demo"
    assert suggested_data("hf", str(tmp_path)) is None
    (tmp_path / "data").mkdir()
    suggestion = suggested_data("hf", str(tmp_path))
    assert (suggestion.source, suggestion.root) == ("hf_tsv", str(tmp_path / "data"))
    assert suggested_data("demo") is None

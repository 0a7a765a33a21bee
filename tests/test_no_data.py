"""No-data mode: a model opened without a data set, on synthetic inputs (data.source "none")."""
import json

import pytest
import torch

from engine.config import (DataSpec, ExportSpec, FinetuneSpec, ModelSpec, PruneSpec, Recipe,
                           RecipeError, StructuredSpec)
from engine.metrics import NO_DATA, format_table
from engine.models.architectures import build_architecture
from engine.session import Session


def open_demo_without_data(shape=None) -> Session:
    return Session.open(ModelSpec(), DataSpec(source="none", input_shape=shape))


def test_the_input_shape_is_inferred_from_the_model_or_taken_as_stated():
    session = open_demo_without_data()
    assert tuple(session.data.input_shape) == (1, 28, 28)
    assert session.data.num_classes == 10 and not session.data.has_labels
    assert session.data.example_input(4).shape == (4, 1, 28, 28)
    # the same synthetic input every time, so MACs and latency repeat
    assert torch.equal(session.data.example_input(1), open_demo_without_data().data.example_input(1))
    resnet = Session.open(ModelSpec(source="torchvision", arch="resnet18", num_classes=7),
                          DataSpec(source="none", input_shape=[3, 64, 64]))
    assert tuple(resnet.data.input_shape) == (3, 64, 64) and resnet.data.num_classes == 7


def test_a_stated_shape_the_model_cannot_take_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"cannot take synthetic inputs of shape \(3, 28, 28\)"):
        open_demo_without_data([3, 28, 28])


def test_input_shape_is_validated():
    with pytest.raises(RecipeError, match="input_shape"):
        DataSpec(source="none", input_shape=[3, 0]).validate()
    with pytest.raises(RecipeError, match="is for data.source 'none'"):
        DataSpec(source="demo", input_shape=[1, 28, 28]).validate()


def test_prune_measure_and_the_table_says_no_data_where_labels_are_needed():
    session = open_demo_without_data()
    session.metrics_spec.latency_runs, session.metrics_spec.latency_warmup = 3, 1
    session.measure_original()
    session.prune(PruneSpec(method="l1", sparsity=0.6))
    current = session.measure_current()
    assert current.accuracy is None and current.nonzero_params < current.params
    assert current.macs and current.effective_macs < current.macs and current.latency_ms > 0
    rows = {r.metric: r for r in session.comparison()}
    assert rows["Accuracy"].original is None and rows["Macro F1"].pruned is None
    table = format_table(session.comparison())
    accuracy_line = next(line for line in table.splitlines() if line.startswith("Accuracy"))
    assert accuracy_line.count(NO_DATA) == 2
    assert "Non-zero parameters" in table and NO_DATA not in \
        next(line for line in table.splitlines() if line.startswith("Non-zero"))


@pytest.mark.parametrize("step", ["gradient", "taylor", "obd", "finetune", "sensitivity",
                                  "taylor channels"])
def test_what_needs_labels_is_refused_and_the_model_is_unchanged(step):
    session = open_demo_without_data()
    before = {k: v.clone() for k, v in session.model.state_dict().items()}
    with pytest.raises(ValueError, match="data"):
        if step == "finetune":
            session.finetune(FinetuneSpec(epochs=1))
        elif step == "sensitivity":
            session.sensitivity_scan(PruneSpec(), [0.5])
        elif step == "taylor channels":
            session.remove_channels(StructuredSpec(ratio=0.5, importance="taylor"))
        else:
            session.prune(PruneSpec(method=step, sparsity=0.5))
    after = session.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_channel_removal_export_and_plain_torch_reload(tmp_path):
    session = Session.open(ModelSpec(source="torchvision", arch="resnet18", num_classes=5),
                           DataSpec(source="none", input_shape=[3, 32, 32]))
    session.metrics_spec.measure_latency = False
    session.measure_original()
    outcome = session.remove_channels(StructuredSpec(ratio=0.5))
    current = session.measure_current()
    assert current.params < session.original_metrics.params and outcome.layers
    paths = session.export(ExportSpec(path=str(tmp_path / "small.pt"), formats=["shapes"]))
    state = torch.load(tmp_path / "small.pt", weights_only=True)
    shapes = json.loads((tmp_path / "small.shapes.json").read_text())
    assert shapes["input_shape"] == [3, 32, 32] and shapes["num_classes"] == 5
    from engine.structured.rebuild import rebuild_model
    rebuilt = rebuild_model(shapes)
    rebuilt.load_state_dict(state)          # plain torch, strict
    x = session.data.example_input(2)
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(x), session.model.eval()(x), atol=1e-5)
    assert len(paths) >= 2


def test_masked_export_reloads_into_the_stock_architecture(tmp_path):
    session = open_demo_without_data()
    session.prune(PruneSpec(sparsity=0.5))
    session.export(ExportSpec(path=str(tmp_path / "pruned.pt"), report=False))
    model = build_architecture("lenet", 10)
    model.load_state_dict(torch.load(tmp_path / "pruned.pt", weights_only=True))
    zeros = sum(int((p == 0).sum()) for n, p in model.named_parameters() if n.endswith("weight"))
    assert zeros > 0


def _recipe(tmp_path, **changes) -> str:
    recipe = Recipe(model=ModelSpec(), data=DataSpec(source="none"),
                    prune=PruneSpec(method="l1", sparsity=0.5),
                    export=ExportSpec(path=str(tmp_path / "out.pt")))
    data = recipe.to_dict()
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        data[section][key] = value
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_the_cli_runs_a_no_data_recipe(tmp_path, capsys):
    from engine.cli import main
    assert main([_recipe(tmp_path), "--no-latency", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Accuracy" in out and NO_DATA in out and (tmp_path / "out.pt").is_file()


@pytest.mark.parametrize("section_key,value,named", [
    ("finetune__epochs", 1, "fine-tuning"), ("prune__method", "taylor", "criterion 'taylor'")])
def test_the_cli_refuses_what_needs_labels_before_loading(tmp_path, capsys, section_key, value, named):
    from engine.cli import main
    assert main([_recipe(tmp_path, **{section_key: value}), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert named in err and "no labels" in err and not (tmp_path / "out.pt").exists()

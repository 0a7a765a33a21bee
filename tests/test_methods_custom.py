"""User method files: the tutorial's BasePruningMethod and importance functions, loaded and run."""
import copy
import textwrap

import pytest
import torch
from torch.nn.utils import prune

from engine.config import PruneSpec
from engine.paths import ROOT
from engine.pruning.apply import prune_model
from engine.pruning.base import CRITERIA, PruneContext, PruneError
from engine.pruning.custom import load_plugin, loaded_plugins

EXAMPLE = ROOT / "examples" / "every_other.py"


def test_example_file_registers_its_methods_beside_the_builtins():
    names = load_plugin(EXAMPLE)
    assert names == ["ExamplePruningMethod", "abs_cubed"]
    assert {"l1", "taylor", "ExamplePruningMethod", "abs_cubed"} <= set(CRITERIA.names())
    cls = CRITERIA.get("ExamplePruningMethod")
    assert "every other" in cls.description and "every_other.py" in cls.label
    assert load_plugin(EXAMPLE) == names                  # loading again changes nothing
    assert str(EXAMPLE.resolve()) in loaded_plugins()


def test_base_pruning_method_gives_the_same_mask_as_torch(lenet):
    reference = copy.deepcopy(lenet)
    prune_model(lenet, PruneSpec(plugin=str(EXAMPLE), method="ExamplePruningMethod",
                                 include=["fc1.weight"]), PruneContext(lenet))
    module = load_plugin_module()
    module.ExamplePruningMethod.apply(reference.fc1, "weight")
    assert torch.equal(lenet.fc1.weight_mask, reference.fc1.weight_mask)
    assert int((lenet.fc1.weight == 0).sum()) == lenet.fc1.weight.numel() // 2


def load_plugin_module():
    from engine.models.sources import import_user_file
    return import_user_file(EXAMPLE)


def test_importance_function_works_with_any_granularity_and_scope(lenet):
    load_plugin(EXAMPLE)
    a, b = copy.deepcopy(lenet), copy.deepcopy(lenet)
    prune_model(a, PruneSpec(method="abs_cubed", scope="global", sparsity=0.6), PruneContext(a))
    prune_model(b, PruneSpec(method="l1", scope="global", sparsity=0.6), PruneContext(b))
    assert torch.equal(a.fc1.weight_mask, b.fc1.weight_mask)   # |w|³ ranks like |w|
    c = copy.deepcopy(lenet)
    out = prune_model(c, PruneSpec(method="abs_cubed", granularity="filter", sparsity=0.5),
                      PruneContext(c))
    assert out.sparsity["fc1.weight"] == 0.5


def test_mask_methods_refuse_global_scope_and_other_granularities(lenet):
    load_plugin(EXAMPLE)
    with pytest.raises(PruneError, match="only be applied locally"):
        prune_model(lenet, PruneSpec(method="ExamplePruningMethod", scope="global"),
                    PruneContext(lenet))
    with pytest.raises(PruneError, match="granularity fine only"):
        prune_model(lenet, PruneSpec(method="ExamplePruningMethod", granularity="filter"),
                    PruneContext(lenet))


def test_amount_is_passed_to_methods_that_take_it(tmp_path, lenet):
    path = tmp_path / "amount.py"
    path.write_text(textwrap.dedent('''
        from torch.nn.utils import prune

        class FirstEntries(prune.BasePruningMethod):
            """Zeroes the first entries."""
            PRUNING_TYPE = "unstructured"
            PRUNELAB_NAME = "first_entries"

            def __init__(self, amount):
                self.amount = amount

            def compute_mask(self, t, default_mask):
                mask = default_mask.clone()
                mask.view(-1)[:round(self.amount * t.numel())] = 0
                return mask
    '''))
    assert load_plugin(path) == ["first_entries"]
    out = prune_model(lenet, PruneSpec(plugin=str(path), method="first_entries", sparsity=0.25,
                                       include=["fc2.weight"]), PruneContext(lenet))
    assert out.sparsity["fc2.weight"] == 0.25
    assert torch.all(lenet.fc2.weight.reshape(-1)[:2520] == 0)


def test_bad_files_are_explained(tmp_path, lenet):
    empty = tmp_path / "nothing.py"
    empty.write_text("x = 1\n")
    with pytest.raises(PruneError, match="no torch.nn.utils.prune.BasePruningMethod"):
        load_plugin(empty)
    clash = tmp_path / "clash.py"
    clash.write_text("def importance_l1(w):\n    return w.abs()\n")
    with pytest.raises(PruneError, match="'l1', a name already taken by the built-in"):
        load_plugin(clash)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(PruneError, match="failed to import: RuntimeError: boom"):
        load_plugin(broken)
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def importance_flat(w):\n    return w.reshape(-1)\n")
    load_plugin(wrong)
    with pytest.raises(PruneError, match="'flat' returned shape"):
        prune_model(lenet, PruneSpec(method="flat"), PruneContext(lenet))
    assert not hasattr(lenet.fc1, "weight_mask")
    with pytest.raises(PruneError, match="not found"):
        load_plugin(tmp_path / "missing.py")

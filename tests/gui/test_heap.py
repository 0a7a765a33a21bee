"""gui.heap: long-lived objects are frozen out of the collector's walk; garbage is not frozen;
imports that open a user's model run with the collector off and are frozen afterwards."""
import gc
import sys
import weakref

from gui.heap import import_quietly, imports_for, settle_heap


class Node:
    pass


def test_settle_heap_collects_garbage_then_freezes_the_living():
    cycle = Node()
    cycle.self = cycle          # unreachable once deleted: only the cycle collector frees it
    gone = weakref.ref(cycle)
    del cycle
    alive = Node()
    try:
        settle_heap()
        assert gone() is None                   # collected before the freeze, not kept forever
        assert gc.get_freeze_count() > 0
        assert not any(o is alive for o in gc.get_objects())   # frozen: out of every generation
    finally:
        gc.unfreeze()


def test_opening_a_model_settles_the_heap(demo_window):
    # the demo opened in the fixture: what it loaded is frozen, so a collection during a run
    # walks only what the run makes (see the heartbeat test)
    assert gc.get_freeze_count() > 0


def test_imports_for_a_source():
    assert imports_for("demo") == () and imports_for("text_demo") == ()
    assert "torchvision" in imports_for("torchvision")
    assert "transformers" in imports_for("hf") and "transformers" not in imports_for("python")


def test_import_quietly_imports_freezes_and_restores_the_collector(monkeypatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    seen = []
    monkeypatch.setattr(gc, "freeze", lambda: seen.append(("freeze", gc.isenabled())))
    assert gc.isenabled()
    import_quietly(["colorsys", "no_such_module_for_prunelab"])   # a missing one is skipped
    assert "colorsys" in sys.modules
    assert seen == [("freeze", False)]   # frozen before the collector came back
    assert gc.isenabled()
    import_quietly(["colorsys"])          # all imported already: nothing to do, nothing frozen
    assert seen == [("freeze", False)]


def test_training_runs_on_every_core_and_gives_the_window_its_core_back():
    import os

    import torch

    from gui.worker import every_core
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with every_core(torch.nn.Linear(2000, 2000)):   # 4M parameters
            assert torch.get_num_threads() == max(1, os.cpu_count() or 1)
        assert torch.get_num_threads() == 1
        with every_core(torch.nn.Linear(20, 20)):       # a small model keeps the window's count
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def _least_kept_after(spec, layers):
    """A seeded LeNet pruned by ``spec``, and the least non-zero |w| over ``layers``."""
    import torch

    from engine.models.architectures import build_architecture
    from engine.pruning.apply import prune_model
    from engine.pruning.base import PruneContext
    torch.manual_seed(0)
    model = build_architecture("lenet")
    prune_model(model, spec, PruneContext(model))
    kept = torch.cat([model.get_submodule(n).weight.detach().abs().flatten() for n in layers])
    return model, float(kept[kept != 0].min())


def test_global_threshold_is_the_least_kept_magnitude_of_the_selected_layers():
    from engine.config import PruneSpec
    from gui.worker import global_magnitude_threshold
    spec = PruneSpec(sparsity=0.6, scope="global", include=["conv*", "fc1.*"])
    model, least = _least_kept_after(spec, ("conv1", "conv2", "fc1"))
    assert global_magnitude_threshold(model, spec) == least
    assert global_magnitude_threshold(model, PruneSpec(sparsity=0.6)) is None   # layer scope
    # excluded layers keep their small weights: the line is drawn from the pruned layers only
    spec = PruneSpec(sparsity=0.6, scope="global", exclude=["conv1.*", "fc3.*"])
    model, least = _least_kept_after(spec, ("conv2", "fc1", "fc2"))
    assert model.conv1.weight.detach().abs().min() < least   # the case the exclusion must get right
    assert global_magnitude_threshold(model, spec) == least

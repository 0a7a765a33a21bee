"""Project bundles: a round trip restores the session exactly; a bundle never runs code."""
import io
import zipfile

import pytest
import torch

from engine.bundle import BundleError, apply_bundle, read_bundle, save_bundle
from engine.config import DataSpec, MetricsSpec, ModelSpec, PruneSpec, Recipe
from engine.runstore import RunStore
from engine.session import Session

FAST = MetricsSpec(measure_latency=False)


def pruned_demo(store):
    session = Session.open(ModelSpec(), DataSpec(), FAST)
    for sparsity in (0.4, 0.8):
        session.revert()
        session.prune(PruneSpec(method="l1", scope="global", sparsity=sparsity))
        session.measure_current()
        session.save_run(store, session.record_run(f"l1 {sparsity:.0%}"))
    return session


def test_round_trip_restores_the_model_and_the_runs(tmp_path):
    with RunStore(tmp_path / "a") as store:
        session = pruned_demo(store)
        path = save_bundle(tmp_path / "project.prunelab", session, Recipe(), store)
    state = {k: v.clone() for k, v in session.model.state_dict().items()}
    bundle = read_bundle(path)
    fresh = Session.open(bundle.recipe.model, bundle.recipe.data, FAST)
    with RunStore(tmp_path / "b") as other_store:     # another machine's empty store
        assert apply_bundle(bundle, fresh, other_store) == 2
        assert [r.label for r in other_store.runs(fresh.identity())] == ["l1 40%", "l1 80%"]
        assert apply_bundle(bundle, fresh, other_store) == 0    # not duplicated
        run = other_store.runs(fresh.identity())[0]
        fresh.restore_run(other_store, run.id)
        assert fresh.measure_current().accuracy == run.metrics["accuracy"]
        fresh.back()   # back to the bundle's current model
    now = fresh.model.state_dict()
    assert list(now) == list(state) and all(torch.equal(state[k], now[k]) for k in now)


def _rewrite(path, extra_name, extra_data):
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buffer, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename))
        dst.writestr(extra_name, extra_data)
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("name", ["model.pt", "data.pkl", "../evil.safetensors", "runs/x.py"])
def test_a_bundle_with_anything_but_json_and_safetensors_is_refused(tmp_path, name):
    with RunStore(tmp_path / "a") as store:
        session = pruned_demo(store)
        path = save_bundle(tmp_path / "p.prunelab", session, Recipe(), store)
    payload = io.BytesIO()
    torch.save({"w": torch.zeros(1)}, payload)      # a pickle inside the zip
    _rewrite(path, name, payload.getvalue())
    with pytest.raises(BundleError, match="never a pickle"):
        read_bundle(path)


def test_a_bundle_of_another_model_is_refused(tmp_path):
    with RunStore(tmp_path / "a") as store:
        session = pruned_demo(store)
        path = save_bundle(tmp_path / "p.prunelab", session, Recipe(), store)
    other = Session.open(ModelSpec(), DataSpec(), FAST)
    with torch.no_grad():
        other.original.fc3.bias.add_(1.0)
    other._identity = None
    with pytest.raises(BundleError, match="another model"):
        apply_bundle(read_bundle(path), other)


def test_not_a_project(tmp_path):
    bad = tmp_path / "x.prunelab"
    bad.write_bytes(b"hello")
    with pytest.raises(BundleError, match="cannot read"):
        read_bundle(bad)
    with pytest.raises(BundleError, match="ends in .prunelab"):
        save_bundle(tmp_path / "x.zip", None, Recipe())

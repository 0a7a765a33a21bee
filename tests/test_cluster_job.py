"""A pruned session packed as a torchrun job folder, the job run, and its result brought back."""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.cluster_job import ClusterSettings, open_results, write_cluster_job
from engine.config import FinetuneSpec, MetricsSpec, Recipe, StructuredSpec
from engine.export import collect_masks
from engine.session import Session

REPO = Path(__file__).resolve().parents[1]


def demo_session_and_recipe():
    recipe = Recipe.load(REPO / "recipes" / "lenet_seed001.json")
    recipe.metrics = MetricsSpec(measure_latency=False)
    recipe.finetune = dataclasses.replace(recipe.finetune, epochs=1, max_batches_per_epoch=6)
    session = Session.open(recipe.model, recipe.data, recipe.metrics, recipe.seed)
    return session, recipe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mask_pruned_job_runs_with_torchrun_and_comes_back(tmp_path):
    session, recipe = demo_session_and_recipe()
    session.prune(dataclasses.replace(recipe.prune, make_permanent=False))
    masks = collect_masks(session.model)
    job = tmp_path / "job"
    written = write_cluster_job(session, recipe, job, ClusterSettings(nodes=1, procs_per_node=2,
                                                                      endpoint="HOST:29400"))
    assert sorted(p.name for p in written) == ["model.masks.pt", "model.pt", "recipe.json",
                                               "run.sh"]
    assert torch.load(job / "model.masks.pt", weights_only=True).keys() == masks.keys()
    script = (job / "run.sh").read_text()
    assert 'NNODES="${NNODES:-1}"' in script and 'NPROC_PER_NODE="${NPROC_PER_NODE:-2}"' in script
    assert 'RDZV_ENDPOINT="${RDZV_ENDPOINT:-HOST:29400}"' in script
    assert "--rdzv_endpoint=\"$RDZV_ENDPOINT\"" in script and os.access(job / "run.sh", os.X_OK)
    saved = json.loads((job / "recipe.json").read_text())
    assert saved["finetune"]["epochs"] == 1 and saved["model"]["path"] == "model.pt"

    # the job as a user runs it: run.sh with its fields filled in through the environment
    env = dict(os.environ, NNODES="1", NPROC_PER_NODE="2", PRUNELAB=str(REPO),
               RDZV_ENDPOINT=f"127.0.0.1:{_free_port()}", OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["bash", str(job / "run.sh")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    checks = json.loads((job / "results" / "run.json").read_text())["distributed"]
    assert checks["world_size"] == 2 and checks["pruned_weights_zero_on_every_rank"] is True
    assert checks["pruned_weights_per_rank"] == sum(int((~m).sum()) for m in masks.values())

    record = open_results(session, job / "results" / "finetuned.pt")
    assert session.history[-1] is record and record.label == "cluster: finetuned.pt"
    pruned = session.measure(session.model, latency=False)
    assert record.metrics.nonzero_params == pruned.nonzero_params   # the same weights kept
    assert record.metrics.accuracy != pruned.accuracy               # but trained: different
    assert record.recipe["distributed"]["masks_identical_across_ranks"] is True


def test_channel_pruned_job_carries_the_shapes(tmp_path):
    session, recipe = demo_session_and_recipe()
    session.remove_channels(StructuredSpec(enabled=True, ratio=0.5, round_to=1))
    job = tmp_path / "job"
    names = {p.name for p in write_cluster_job(session, recipe, job)}
    assert names == {"model.pt", "model.shapes.json", "recipe.json", "run.sh"}
    # the job's recipe runs as the cluster would run it (here in one process) and comes back
    from engine.pipeline import run_recipe
    result = run_recipe(Recipe.load(job / "recipe.json"))
    assert {p.name for p in result.exported} == {"finetuned.pt", "finetuned.shapes.json",
                                                 "finetuned.report.json"}
    record = open_results(session, job / "results" / "finetuned.pt")
    assert record.metrics.params == session.measure(session.model, latency=False).params
    assert record.metrics.params < session.original_metrics.params


def test_refusals_name_the_problem(tmp_path):
    session, recipe = demo_session_and_recipe()
    with pytest.raises(ValueError, match="prune the model first"):
        write_cluster_job(session, recipe, tmp_path / "a")
    session.prune(dataclasses.replace(recipe.prune, make_permanent=False))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an empty folder"):
        write_cluster_job(session, recipe, tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    no_training = dataclasses.replace(recipe, finetune=FinetuneSpec(epochs=0))
    with pytest.raises(ValueError, match="fine-tuning epochs"):
        write_cluster_job(session, no_training, tmp_path / "b")
    with pytest.raises(ValueError, match="host:port"):
        write_cluster_job(session, recipe, tmp_path / "c", ClusterSettings(endpoint=" "))


def test_run_sh_keeps_an_awkward_prunelab_path_literal(tmp_path):
    session, recipe = demo_session_and_recipe()
    session.prune(dataclasses.replace(recipe.prune, make_permanent=False))
    odd = str(tmp_path / 'my "prune" lab $HOME `x`')
    write_cluster_job(session, recipe, tmp_path / "job", ClusterSettings(prunelab=odd))
    script = (tmp_path / "job" / "run.sh").read_text()
    line = next(x for x in script.splitlines() if x.startswith("PRUNELAB="))
    assignment = line.split("  #")[0].strip()
    shown = subprocess.run(["bash", "-c", f'unset PRUNELAB; {assignment}; printf %s "$PRUNELAB"'],
                           capture_output=True, text=True, check=True).stdout
    assert shown == odd

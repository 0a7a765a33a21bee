"""Distributed fine-tuning under torchrun: real multi-process jobs on CPU with gloo.

Each test launches ``python -m torch.distributed.run --standalone`` (torchrun) on ``main.py
--headless``, so what is checked is what a user runs. Kept small: LeNet on the demo for a few
batches, a resnet18 on 16x16 images."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
STEPS = 12   # fine-tuning batches per run: enough to tell a wrong average from a right one


def torchrun(nproc: int, recipe: dict, folder: Path, *extra: str, timeout: int = 300
             ) -> subprocess.CompletedProcess:
    recipe_path = folder / "recipe.json"
    recipe_path.write_text(json.dumps(recipe))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc_per_node={nproc}", str(REPO / "main.py"), "--headless", str(recipe_path),
         "--no-latency", "--json", str(folder / "run.json"), *extra],
        cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)


def demo_recipe(folder: Path, **finetune) -> dict:
    recipe = json.loads((REPO / "recipes" / "lenet_seed001.json").read_text())
    recipe["finetune"].update({"epochs": 1, "max_batches_per_epoch": STEPS, **finetune})
    recipe["export"]["path"] = str(folder / "pruned.pt")
    return recipe


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp2")
    done = torchrun(2, demo_recipe(folder), folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, done


def test_two_ranks_end_with_identical_masks_and_zeros_kept(two_ranks):
    folder, done = two_ranks
    checks = json.loads((folder / "run.json").read_text())["distributed"]
    assert checks["world_size"] == 2 and checks["backend"] == "gloo"
    assert checks["masks_identical_across_ranks"] is True
    assert checks["masks_unchanged_since_pruning"] is True
    assert checks["parameters_identical_across_ranks"] is True
    assert checks["pruned_weights_zero_on_every_rank"] is True
    assert checks["pruned_weights_per_rank"] > 30000   # LeNet at the recipe's sparsities
    # the export (masks folded in) still has the recipe's sparsity in every layer after training
    state = torch.load(folder / "pruned.pt", weights_only=True)
    recipe = demo_recipe(folder)
    for name, ratio in recipe["prune"]["per_layer"].items():
        zeros = float((state[name] == 0).float().mean())
        assert zeros >= ratio - 0.01, (name, zeros)


def test_only_rank_zero_prints_and_writes(two_ranks):
    folder, done = two_ranks
    assert done.stdout.count("After fine-tuning") == 1
    assert done.stdout.count("wrote ") == 2          # the model and its report, once
    assert sorted(p.name for p in folder.iterdir()) == \
        ["pruned.pt", "pruned.report.json", "recipe.json", "run.json"]   # no stray temp files
    assert ("Fine-tuned on 2 processes (gloo): masks as at pruning: yes; masks identical on every "
            "rank: yes; weights identical: yes; pruned weights still exactly zero on every rank: "
            "yes") in done.stdout


def test_two_ranks_match_one_process_with_the_same_global_batch(two_ranks, tmp_path):
    """LeNet has no BatchNorm: two ranks of 4 samples average to the gradient of one batch of 8
    with the same samples (DistributedSampler deals one permutation out to the ranks)."""
    folder, _ = two_ranks
    done = torchrun(1, demo_recipe(tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    one = json.loads((tmp_path / "run.json").read_text())["finetune"]["epochs"][0]
    two = json.loads((folder / "run.json").read_text())["finetune"]["epochs"][0]
    assert one["test_samples"] == two["test_samples"] == 360   # test split shared, all counted
    assert abs(one["train_loss"] - two["train_loss"]) < 1e-4
    assert abs(one["test_loss"] - two["test_loss"]) < 1e-4
    # and training did move the model: the comparison is not between two untouched models
    after_prune = json.loads((folder / "run.json").read_text())["after_prune"]
    loss_before = next(r for r in after_prune if r["metric"] == "Loss")["pruned"]
    assert abs(loss_before - two["test_loss"]) > 0.01   # 0.046 here: 400x the tolerance


def test_ctrl_c_stops_every_rank_with_one_line_and_no_export(tmp_path):
    """Ctrl-C in a terminal reaches the whole foreground process group: torchrun and every rank."""
    import signal
    recipe = demo_recipe(tmp_path, max_batches_per_epoch=None, epochs=3)
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    job = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(REPO / "main.py"), "--headless", str(tmp_path / "recipe.json"), "--no-latency"],
        cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        seen = []
        for line in job.stderr:   # rank 0's progress: interrupt once training has started
            seen.append(line)
            if line.startswith("Fine-tuning"):
                break
        os.killpg(job.pid, signal.SIGINT)
        _, rest = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode != 0
    ours = [line.strip() for line in seen + rest.splitlines() if line.startswith("prunelab:")]
    assert ours == ["prunelab: stopped by the user; nothing was exported"], "".join(seen) + rest
    assert not (tmp_path / "pruned.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.json"]


FAILING_MODEL = '''
import os
import torch
from torch import nn


class FailsOnRankOne(nn.Module):
    """Trains normally on rank 0; on rank 1 the fourth training batch raises."""
    def __init__(self, num_classes=10):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, 32)
        self.fc2 = nn.Linear(32, num_classes)
        self.calls = 0

    def forward(self, x):
        if self.training and os.environ.get("RANK") == "1":
            self.calls += 1
            if self.calls > 3:
                raise RuntimeError("this rank ran out of luck")
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))
'''


def test_a_failing_rank_stops_the_job_and_nothing_is_exported(tmp_path):
    (tmp_path / "fails.py").write_text(FAILING_MODEL)
    recipe = {"model": {"source": "python", "path": str(tmp_path / "fails.py"),
                        "factory": "FailsOnRankOne"},
              "data": {"source": "demo"},
              "prune": {"method": "l1", "sparsity": 0.5},
              "finetune": {"epochs": 1, "batch_size": 8, "max_batches_per_epoch": 20},
              "export": {"path": str(tmp_path / "out" / "pruned.pt"), "report": True}}
    (tmp_path / "out").mkdir()
    done = torchrun(2, recipe, tmp_path)
    assert done.returncode != 0
    assert list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "run.json").exists()
    ours = [line for line in done.stderr.splitlines() if line.startswith("prunelab:")]
    assert ours == ["prunelab: rank 1: this rank ran out of luck"], done.stderr[-3000:]


def test_channel_pruned_resnet18_trains_under_ddp(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("val", 4)):
        for c in range(2):
            folder = tmp_path / "images" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    recipe = {"model": {"source": "torchvision", "arch": "resnet18", "num_classes": 2},
              "data": {"source": "imagefolder", "root": str(tmp_path / "images"),
                       "image_size": 16, "channels": 3, "batch_size": 8, "val_fraction": 0.0},
              "structured": {"enabled": True, "ratio": 0.5, "importance": "l1",
                             "scope": "uniform", "round_to": 8},
              "finetune": {"epochs": 1, "batch_size": 8, "lr": 0.01},
              "export": {"path": str(tmp_path / "out" / "resnet18.pt"), "report": False,
                         "formats": ["state_dict", "shapes"]}}
    done = torchrun(2, recipe, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads((tmp_path / "run.json").read_text())
    checks = document["distributed"]
    assert checks["world_size"] == 2 and checks["parameters_identical_across_ranks"] is True
    widths = {w["name"]: w for w in document["layer_widths"]}
    assert widths["layer1.0.conv1"]["out_after"] == widths["layer1.0.conv1"]["out_before"] // 2
    assert document["finetune"]["epochs"][0]["test_samples"] == 8
    # the export rebuilds from its shapes and carries the trained (not the freshly pruned) weights
    from engine.config import ModelSpec
    from engine.models.sources import load_model
    shapes = next((tmp_path / "out").glob("*.shapes.json"))
    loaded = load_model(ModelSpec(source="state_dict", path=str(tmp_path / "out" / "resnet18.pt"),
                                  shapes=str(shapes), num_classes=2))
    assert loaded.model.layer1[0].conv1.out_channels == widths["layer1.0.conv1"]["out_after"]


@pytest.fixture
def one_rank_group(monkeypatch):
    """A real gloo process group of one rank, in this process, for the checks themselves."""
    import socket
    from engine import distributed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(key, value)
    run = distributed.start("cpu")
    yield run
    distributed.stop()
    assert distributed.active() is None


def test_the_end_checks_catch_a_mask_that_changed(one_rank_group):
    from engine import distributed
    from engine.config import PruneSpec
    from engine.models.lenet import LeNet
    from engine.pruning.apply import prune_model
    from engine.pruning.base import PruneContext
    torch.manual_seed(0)
    model = LeNet()
    prune_model(model, PruneSpec(sparsity=0.5), PruneContext(model))
    distributed.sync_pruned_model(model)
    checks = distributed.check_masks_fixed(model)
    assert checks["masks_unchanged_since_pruning"] and checks["pruned_weights_zero_on_every_rank"]
    assert checks["pruned_weights_per_rank"] == sum(
        int(b.numel() - b.sum()) for n, b in model.named_buffers() if n.endswith("_mask"))
    # a pruned weight comes back to life: both checks say so
    with torch.no_grad():
        off = (model.fc1.weight_mask == 0).nonzero()[0]
        model.fc1.weight_mask[tuple(off)] = 1.0
        model.fc1.weight_orig[tuple(off)] = 0.5
    checks = distributed.check_masks_fixed(model)
    assert checks["masks_unchanged_since_pruning"] is False
    assert checks["pruned_weights_zero_on_every_rank"] is False


def test_a_stop_is_taken_at_the_next_step_on_every_rank(one_rank_group):
    from engine.distributed import DDPTraining
    from engine.progress import Cancelled, CancelToken
    strategy = DDPTraining(one_rank_group)
    token = CancelToken()
    assert strategy.step_loss(torch.tensor(2.5), token) == 2.5
    strategy.check_cancel(token)   # nobody asked: goes on
    token.cancel()
    strategy.step_loss(torch.tensor(1.0), token)
    with pytest.raises(Cancelled):
        strategy.check_cancel(token)

"""A pruned model packed for fine-tuning elsewhere with torchrun, and its results brought back.

:func:`write_cluster_job` writes a folder that runs as it is on a cluster:

- ``model.pt``: the pruned weights (masks folded in) and ``model.masks.pt`` the masks, or, for a
  channel-pruned model, ``model.pt`` and ``model.shapes.json`` (its new layer widths);
- ``recipe.json``: the session's recipe pointing at that model, with its fine-tuning section. A
  mask-pruned model's masks are re-derived in the job from its zeros (L1, each layer at exactly its
  own fraction of zeros); the writer checks that this reproduces the session's masks exactly;
- ``run.sh``: the torchrun command line, with the number of nodes, processes per node and the
  rendezvous endpoint as variables at its top for the user to fill in;
- ``results/``: where the job writes ``finetuned.pt`` (and ``.shapes.json``) and ``run.json``.

:func:`open_results` measures such a fine-tuned checkpoint beside the original and adds it to the
session's run history; the live model is left as it is.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import torch

from engine.config import ExportSpec, ModelSpec, PruneSpec, Recipe, ScheduleSpec, StructuredSpec
from engine.io import atomic_write_text
from engine.paths import ROOT
from engine.progress import CancelToken, ProgressFn

RESULTS = "results"
RESULT_MODEL = "finetuned.pt"

RUN_SH = """#!/usr/bin/env bash
# PruneLab cluster job: fine-tune the pruned model in this folder with torchrun
# (DistributedDataParallel, one process per GPU, or per core group on CPU).
# Fill in the four values below (or set them in the environment), then run this script on every
# node of the job; all nodes use the same ENDPOINT (host:port of the first node) and JOB_ID.
# finetune.batch_size in recipe.json is the global batch: it must split evenly over
# NNODES x NPROC_PER_NODE processes. Data paths in recipe.json are this machine's: edit them.
set -euo pipefail
NNODES="${{NNODES:-{nodes}}}"                 # number of machines
NPROC_PER_NODE="${{NPROC_PER_NODE:-{procs}}}"        # processes (GPUs) per machine
RDZV_ENDPOINT="${{RDZV_ENDPOINT:-{endpoint}}}"   # host:port of the rendezvous (first node)
JOB_ID="${{JOB_ID:-prunelab}}"                  # the same on every node
PRUNELAB="${{PRUNELAB:-{prunelab}}}"   # PruneLab's folder (main.py) on the cluster

cd "$(dirname "$0")"
exec torchrun --nnodes="$NNODES" --nproc_per_node="$NPROC_PER_NODE" \\
    --rdzv_backend=c10d --rdzv_endpoint="$RDZV_ENDPOINT" --rdzv_id="$JOB_ID" \\
    "$PRUNELAB/main.py" --headless recipe.json --json {results}/run.json
"""


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    nodes: int = 1
    procs_per_node: int = 2
    endpoint: str = "HOST:29400"
    prunelab: str = str(ROOT)

    def validate(self) -> None:
        if self.nodes < 1 or self.procs_per_node < 1:
            raise ValueError("nodes and processes per node must be at least 1")
        if not self.endpoint.strip() or any(c.isspace() for c in self.endpoint.strip()):
            raise ValueError("the rendezvous endpoint is host:port, without spaces")


def _masked_zero_fractions(model) -> dict[str, float]:
    from engine.pruning.targets import prunable_targets
    fractions = {}
    for target in prunable_targets(model):
        if target.is_masked:
            mask = target.mask()
            fractions[target.name] = float((mask == 0).sum()) / mask.numel()
    return fractions


def _job_recipe(session, recipe: Recipe, structured: bool) -> Recipe:
    arch = session.loaded.arch
    model = ModelSpec(source="state_dict", arch=arch, path="model.pt",
                      shapes="model.shapes.json" if structured else None,
                      num_classes=session.data.num_classes,
                      arch_options=dict(recipe.model.arch_options))
    if structured:   # the channels are gone already; no mask is cut (all-ones masks, folded at the end)
        prune = PruneSpec(method="l1", sparsity=0.0, make_permanent=True)
    else:
        fractions = _masked_zero_fractions(session.model)
        prune = PruneSpec(method="l1", granularity="fine", scope="local", sparsity=0.0,
                          per_layer=fractions, include=sorted(fractions),
                          make_permanent=recipe.prune.make_permanent)
    export = ExportSpec(path=f"{RESULTS}/{RESULT_MODEL}", report=True,
                        formats=["state_dict", "shapes"] if structured else None)
    return dataclasses.replace(recipe, name=f"{recipe.name} (cluster fine-tuning)", model=model,
                               prune=prune, schedule=ScheduleSpec(), structured=StructuredSpec(),
                               export=export)


def _check_masks_reproduced(session, folder: Path, job: Recipe) -> None:
    """Loads the written model as the job will and re-derives its masks: they must be exactly the
    session's, or the job would fine-tune a differently pruned model."""
    from engine.export import collect_masks
    from engine.models.sources import load_model
    from engine.pruning.apply import prune_model
    from engine.pruning.base import PruneContext
    spec = dataclasses.replace(job.model, path=str(folder / "model.pt"))
    model = load_model(spec).model
    prune_model(model, dataclasses.replace(job.prune, make_permanent=False),
                PruneContext(model, seed=job.prune.seed))
    ours, theirs = collect_masks(session.model), collect_masks(model)
    if ours.keys() != theirs.keys() or any(not torch.equal(ours[k], theirs[k]) for k in ours):
        raise ValueError("the job could not reproduce this model's masks from its zeros (a weight "
                         "the mask keeps is exactly zero); fine-tune a little here first")


def _in_double_quotes(text: str) -> str:
    """``text`` as it must be written inside a bash double-quoted string."""
    return "".join("\\" + c if c in '\\"$`' else c for c in text)


def write_cluster_job(session, recipe: Recipe, folder: str | Path,
                      settings: ClusterSettings = ClusterSettings()) -> list[Path]:
    """Writes the job folder (see the module's description); returns the files written. Refuses a
    folder that already holds files, a model that is not pruned, or a recipe with no fine-tuning."""
    folder = Path(folder).expanduser()
    settings.validate()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ValueError(f"{folder} is not an empty folder; choose a new or empty one")
    if recipe.finetune.epochs < 1:
        raise ValueError("set the fine-tuning epochs (at least 1): the job fine-tunes")
    if session.loaded.arch is None:
        raise ValueError(f"a cluster job rebuilds the model by its architecture name; "
                         f"{session.loaded.description} has none (open it as a state_dict with "
                         f"its architecture)")
    structured = session.structured is not None
    if not structured and not _masked_zero_fractions(session.model):
        raise ValueError("prune the model first (with masks still installed, or channels removed)")
    job = _job_recipe(session, recipe, structured)
    folder.mkdir(parents=True, exist_ok=True)
    written = session.export(ExportSpec(path=str(folder / "model.pt"), include_masks=not structured,
                                        report=False,
                                        formats=["state_dict", "shapes"] if structured else None))
    if not structured:
        _check_masks_reproduced(session, folder, job)
    (folder / RESULTS).mkdir(exist_ok=True)
    job.save(folder / "recipe.json")
    run_sh = folder / "run.sh"
    atomic_write_text(run_sh, RUN_SH.format(nodes=settings.nodes, procs=settings.procs_per_node,
                                            endpoint=settings.endpoint.strip(),
                                            prunelab=_in_double_quotes(settings.prunelab),
                                            results=RESULTS))
    run_sh.chmod(0o755)
    return written + [folder / "recipe.json", run_sh]


def open_results(session, checkpoint: str | Path, progress: Optional[ProgressFn] = None,
                 cancel: Optional[CancelToken] = None):
    """Measures a checkpoint fine-tuned by a cluster job (``results/finetuned.pt``, with its
    ``.shapes.json`` beside it for a channel-pruned model) beside the original, and adds it to the
    session's run history as its own run. Returns the :class:`~engine.session.RunRecord`."""
    from engine.models.sources import load_model
    checkpoint = Path(checkpoint).expanduser()
    shapes = checkpoint.with_name(f"{checkpoint.stem}.shapes.json")
    spec = ModelSpec(source="state_dict", arch=session.loaded.arch, path=str(checkpoint),
                     shapes=str(shapes) if shapes.is_file() else None,
                     num_classes=session.data.num_classes)
    if session.loaded.arch is None and spec.shapes is None:
        raise ValueError(f"{session.loaded.description} has no architecture name to rebuild "
                         f"{checkpoint.name} with")
    model = load_model(spec).model
    run_json = checkpoint.parent / "run.json"
    note = {}
    if run_json.is_file():
        try:
            note = {"distributed": json.loads(run_json.read_text()).get("distributed")}
        except (OSError, ValueError):
            note = {}
    return session.record_model(f"cluster: {checkpoint.name}", model, note, progress, cancel)

"""Running a recipe on several processes or machines under ``torchrun``, with PyTorch's own
``torch.distributed`` and ``DistributedDataParallel`` (no launcher of our own).

Every rank loads the same model and prunes it the same way (same seed, same data, the whole
calibration data on every rank, so data-driven criteria see identical statistics); then
:func:`sync_pruned_model` checks that every rank ended with the same architecture and masks and
copies rank 0's tensors to the others, so they are identical bit for bit. Fine-tuning then wraps the
*pruned* model in DDP (masks are buffers: DDP broadcasts them from rank 0, and ``weight_orig`` is the
parameter it averages), with a ``DistributedSampler`` whose epoch is set every epoch, the optimizer
built on the final parameters and a seed per rank derived from the recipe's. Validation and test are
split across ranks and their confusion matrices and losses summed. Only rank 0 reports and exports,
and only after every rank has said it finished (:func:`all_finished`), so a failing rank leaves no
export behind.

Everything here is a no-op, or the plain single-process behaviour, when no process group was started:
the GUI and a plain ``main.py --headless`` never start one.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from engine.progress import Cancelled, CancelToken


@dataclass(frozen=True)
class DistributedRun:
    """This process's place in a torchrun job."""
    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_ACTIVE: Optional[DistributedRun] = None


def active() -> Optional[DistributedRun]:
    return _ACTIVE


def start(device: str = "auto") -> DistributedRun:
    """Joins the process group torchrun prepared. On CUDA each rank takes the GPU of its
    ``LOCAL_RANK`` and collectives run on NCCL (CPU tensors on gloo); on CPU everything runs on
    gloo."""
    global _ACTIVE
    import torch.distributed as dist
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise ValueError("CUDA was requested but no CUDA device is available")
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} "
                             f"GPU(s) are visible: start at most that many processes per node")
        torch.cuda.set_device(local_rank)
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend)
    _ACTIVE = DistributedRun(dist.get_rank(), dist.get_world_size(), local_rank, backend)
    return _ACTIVE


def finish_together() -> None:
    """Every rank waits here for the others before the process group is torn down. A rank that
    tore its group down while rank 0 was still writing the export now and then aborted at exit
    ("terminate called without an active exception" from gloo's threads: seen in CI, and in 1 of
    8 local runs of tests/test_distributed.py). A peer that is already gone makes this fail at
    once; that is ignored, and the run's own exit code stands."""
    import torch.distributed as dist
    if dist.is_initialized():
        try:
            dist.barrier()
        except RuntimeError:
            pass


def stop() -> None:
    global _ACTIVE
    import torch.distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()
    _ACTIVE = None


# ------------------------------------------------------------------ agreeing on the pruned model

def _digest(tensors) -> str:
    h = hashlib.sha256()
    for name, tensor in tensors:
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _gather(value):
    import torch.distributed as dist
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def _masks(model: nn.Module):
    return [(n, b) for n, b in model.named_buffers() if n.endswith("_mask")]


def _pruned_positions(model: nn.Module) -> dict[str, torch.Tensor]:
    from engine.pruning.targets import prunable_targets
    return {t.name: (t.mask() == 0).cpu() for t in prunable_targets(model) if t.is_masked}


def _architecture(model: nn.Module) -> str:
    return "|".join(f"{n}:{tuple(t.shape)}" for n, t in model.state_dict().items())


# this rank's masks right after pruning: their digest, and where each parameter's zeros are
_PRUNED_MASKS: Optional[str] = None
_PRUNED_OFF: dict[str, torch.Tensor] = {}


@torch.no_grad()
def sync_pruned_model(model: nn.Module) -> None:
    """After pruning: every rank must hold the same architecture (channel removal decides shapes
    locally, so a mismatch cannot be repaired and is an error); then rank 0's parameters and buffers
    (masks included) are copied to every rank and the masks checked identical."""
    run = active()
    if run is None:
        return
    import torch.distributed as dist
    shapes = _gather(_architecture(model))
    if len(set(shapes)) != 1:
        raise RuntimeError("the ranks pruned to different architectures; pruning must be "
                           "deterministic under torchrun (fix the recipe's seed)")
    for tensor in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(tensor.data, src=0)
    global _PRUNED_MASKS, _PRUNED_OFF
    _PRUNED_MASKS = _digest(_masks(model))
    _PRUNED_OFF = _pruned_positions(model)
    if len(set(_gather(_PRUNED_MASKS))) != 1:
        raise RuntimeError("the masks differ between ranks after pruning")
    from engine.pruning.targets import refresh_masked_weights
    refresh_masked_weights(model)


@torch.no_grad()
def check_masks_fixed(model: nn.Module) -> Optional[dict]:
    """At the end of a distributed fine-tuning, before masks are folded: on every rank, are the
    masks still those installed at pruning, the same as every other rank's, and the weights too;
    and, in the weights as they will be exported (masks folded in), is every pruned weight exactly
    zero? Returns what the run's JSON records (None outside a distributed run)."""
    run = active()
    if run is None:
        return None
    from engine.metrics import effective_state
    exported = effective_state(model)
    # the positions pruned at the start, in the tensors written at the end
    zeros_kept = all(name in exported and bool((exported[name][off] == 0).all())
                     for name, off in _PRUNED_OFF.items())
    pruned = sum(int(off.sum()) for off in _PRUNED_OFF.values())
    unchanged = _gather(_digest(_masks(model)) == _PRUNED_MASKS)
    all_zero = _gather(zeros_kept)
    masks_same = len(set(_gather(_digest(_masks(model))))) == 1
    params_same = len(set(_gather(_digest(model.state_dict().items())))) == 1
    return {"world_size": run.world_size, "backend": run.backend,
            "masks_unchanged_since_pruning": all(unchanged),
            "masks_identical_across_ranks": masks_same,
            "parameters_identical_across_ranks": params_same,
            "pruned_weights_zero_on_every_rank": all(all_zero),
            "pruned_weights_per_rank": pruned}


def all_finished(ok: bool = True) -> bool:
    """A collective every rank reaches at the end of its run: True only if every rank finished.
    Rank 0 writes nothing before it, so a rank that failed earlier (and never gets here) leaves no
    export behind."""
    run = active()
    if run is None:
        return ok
    import torch.distributed as dist
    flag = torch.tensor([0 if ok else 1], dtype=torch.int64)
    dist.all_reduce(flag)
    return int(flag) == 0


def writes_outputs() -> bool:
    """Whether this process reports and writes files (rank 0, or a run without torchrun)."""
    run = active()
    return run is None or run.is_main


# ------------------------------------------------------------------ training strategies

class LocalTraining:
    """One process: the plain loop's behaviour."""
    world_size = 1
    reduce_eval = None

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def train_loader(self, data, batch_size: int, seed: int) -> DataLoader:
        return data.loader("train", batch_size, shuffle=True, seed=seed)

    def start_epoch(self, loader: DataLoader, epoch: int) -> None:
        pass

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def end_epoch(self, model: nn.Module) -> None:
        pass

    def check_cancel(self, cancel: Optional[CancelToken]) -> None:
        if cancel is not None:
            cancel.raise_if_cancelled()

    def step_loss(self, loss: torch.Tensor, cancel: Optional[CancelToken]) -> float:
        return float(loss.detach())

    def eval_loader(self, data, split: str, batch_size: int) -> DataLoader:
        return data.loader(split, batch_size)


class DDPTraining(LocalTraining):
    """Data-parallel fine-tuning: ``finetune.batch_size`` is the global batch, each rank takes its
    share of every batch; the loss shown is the mean over ranks."""

    def __init__(self, run: DistributedRun) -> None:
        self.run = run
        self.world_size = run.world_size
        self._stop = False

    def seed(self, seed: int) -> None:
        # a different stream per rank (dropout, augmentation), reproducible from the recipe's seed
        rank_seed = np.random.SeedSequence([seed, self.run.rank]).generate_state(1)[0]
        torch.manual_seed(int(rank_seed))

    def train_loader(self, data, batch_size: int, seed: int) -> DataLoader:
        from torch.utils.data.distributed import DistributedSampler
        sampler = DistributedSampler(data.split("train"), num_replicas=self.world_size,
                                     rank=self.run.rank, shuffle=True, seed=seed)
        return DataLoader(data.split("train"), batch_size=batch_size // self.world_size,
                          sampler=sampler, collate_fn=data.collate_fn())

    def start_epoch(self, loader: DataLoader, epoch: int) -> None:
        loader.sampler.set_epoch(epoch)

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel
        device = next(model.parameters()).device
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                       else None)

    @torch.no_grad()
    def end_epoch(self, model: nn.Module) -> None:
        # BatchNorm running statistics are buffers each rank updated from its own share of the
        # last batch; DDP would copy rank 0's at the next forward, so do it now: every rank then
        # evaluates (its shard) and keeps the same model
        import torch.distributed as dist
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)

    def check_cancel(self, cancel: Optional[CancelToken]) -> None:
        # decided together at the previous step, so every rank stops after the same batch
        if self._stop:
            self._stop = False
            raise Cancelled("stopped by the user")

    def step_loss(self, loss: torch.Tensor, cancel: Optional[CancelToken]) -> float:
        import torch.distributed as dist
        stop = 1.0 if cancel is not None and cancel.cancelled else 0.0
        both = torch.stack([loss.detach().float(), torch.tensor(stop, device=loss.device)])
        dist.all_reduce(both)
        self._stop = bool(both[1] > 0)
        if self._stop and cancel is not None:
            cancel.cancel()   # every rank then stops the rest of the run alike, not only rank r
        return float(both[0]) / self.world_size

    def eval_loader(self, data, split: str, batch_size: int) -> DataLoader:
        dataset = data.split(split)
        shard = Subset(dataset, range(self.run.rank, len(dataset), self.world_size))
        return DataLoader(shard, batch_size=batch_size, collate_fn=data.collate_fn())

    def reduce_eval(self, confusion: torch.Tensor, loss_sum: float, n: int
                    ) -> tuple[torch.Tensor, float, int]:
        import torch.distributed as dist
        confusion = confusion.clone()
        dist.all_reduce(confusion)
        totals = torch.tensor([loss_sum, float(n)], dtype=torch.float64)
        dist.all_reduce(totals)
        return confusion, float(totals[0]), int(totals[1])


def training_strategy() -> LocalTraining:
    run = active()
    return LocalTraining() if run is None else DDPTraining(run)

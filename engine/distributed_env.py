"""What the CLI needs to know about a torchrun job before torch is imported (``--help`` and bad
input stay instant); the distributed work itself is in :mod:`engine.distributed`."""
from __future__ import annotations

import os

# How gloo and NCCL say that another rank went away (it failed, or torchrun stopped it).
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe",
              "NCCL communicator was aborted", "Socket Timeout")


def launched_by_torchrun() -> bool:
    """torchrun (and ``python -m torch.distributed.run``) sets these for every worker."""
    return all(key in os.environ for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def env_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def check_distributed_recipe(recipe, world_size: int) -> None:
    """What a distributed run cannot do, refused before anything is loaded."""
    if recipe.schedule.kind != "oneshot":
        raise ValueError(f"schedule '{recipe.schedule.kind}' is not supported under torchrun; "
                         f"use the one-shot schedule (prune, then fine-tune)")
    if recipe.finetune.epochs and recipe.finetune.batch_size % world_size:
        raise ValueError(f"finetune.batch_size {recipe.finetune.batch_size} is the global batch "
                         f"and must split evenly over {world_size} processes")


def is_peer_failure(exc: BaseException) -> bool:
    """An error that only says another rank is gone: that rank reports its own failure."""
    import torch.distributed as dist
    if isinstance(exc, (dist.DistNetworkError,)):
        return True
    text = str(exc)
    return isinstance(exc, (RuntimeError, dist.DistError)) and any(s in text for s in _PEER_GONE)

"""Data parallelism across processes started by `torchrun` or `accelerate launch`.

Every process runs the same command; work items are dealt out by rank (item i goes to rank
i % world_size), results travel to rank 0 as Python objects over a gloo group (CPU tensors only,
so it works beside NCCL and on CPU-only machines), and only rank 0 writes files. Alone, every
helper is a no-op: rank 0 of 1.
"""

from __future__ import annotations

import os
from typing import Any

_GROUP: Any = None


def world() -> tuple[int, int]:
    """(rank, world_size) from the launcher's environment; (0, 1) when started alone."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _group(backend: str | None = None):
    """The gloo group objects travel over (the default process group is created on first use)."""
    global _GROUP
    import torch.distributed as dist

    if not dist.is_initialized():
        if backend is None:
            import torch

            backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    if _GROUP is None:
        _GROUP = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD
    return _GROUP


def gpu_slice(per_rank: int) -> str | None:
    """CUDA_VISIBLE_DEVICES for this rank when each rank drives `per_rank` GPUs of its node (an
    engine such as vLLM with tensor parallelism), or None when started alone."""
    rank, size = world()
    if size == 1:
        return None
    local = int(os.environ.get("LOCAL_RANK", rank))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible else [str(i) for i in range((local + 1) * per_rank)]
    mine = devices[local * per_rank : (local + 1) * per_rank]
    return ",".join(mine) if len(mine) == per_rank else None


def process_place(*, engine_owns_gpus: bool = False):
    """(rank, world_size, device) of this process; joins the process group when there are several.

    With `engine_owns_gpus` (vLLM) the group is gloo and CUDA is left untouched, so the engine
    started afterwards sees only the GPUs `gpu_slice` gave this rank."""
    import torch

    rank, size = world()
    if engine_owns_gpus:
        if size > 1:
            _group("gloo")
        return rank, size, torch.device("cpu")
    if size > 1:
        _group()
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, size, torch.device("cuda", local)
    return rank, size, torch.device("cpu")


def gather_to_zero(obj: Any, world_size: int) -> list[Any] | None:
    """Every rank's `obj`, in rank order, on rank 0 (None elsewhere)."""
    if world_size == 1:
        return [obj]
    import torch.distributed as dist

    group = _group()
    out = [None] * world_size if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0, group=group)
    return out


def broadcast_from_zero(obj: Any, world_size: int) -> Any:
    """Rank 0's `obj` on every rank."""
    if world_size == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0, group=_group())
    return box[0]


def barrier(world_size: int) -> None:
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier(group=_group())


def all_gather(obj: Any, world_size: int) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if world_size == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world_size
    dist.all_gather_object(out, obj, group=_group())
    return out


class RankScorer:
    """A search scorer shared by every process of a run: candidates are dealt out by rank.

    `score_many(scalings)` has rank r score scalings r, r + world_size, ... in full (every fitness
    document, the same forward passes as one process) and all ranks receive every value, so each
    process's search takes the same steps and the result is bit-identical to one process. Dealing
    a candidate's documents across ranks instead would sum per-document terms in another order
    (and stall the fastest rank on every candidate). Plain calls score on this rank alone.
    Only rank 0 writes checkpoints (`writes_checkpoints`); the identity is the inner scorer's, so a
    checkpoint resumes under any number of processes."""

    def __init__(self, scorer: Any, rank: int, world_size: int) -> None:
        self.scorer, self.rank, self.world_size = scorer, rank, world_size
        self.identity = getattr(scorer, "identity", None)
        self.width = world_size
        self.writes_checkpoints = rank == 0

    def __call__(self, scaling: Any) -> float:
        return float(self.scorer(scaling))

    def score_many(self, scalings: list[Any]) -> list[float]:
        mine = {i: float(self.scorer(s)) for i, s in enumerate(scalings)
                if i % self.world_size == self.rank}
        values: dict[int, float] = {}
        for part in all_gather(mine, self.world_size):
            values.update(part)
        return [values[i] for i in range(len(scalings))]

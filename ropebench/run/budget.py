"""Will it fit? Memory and time of one forward pass at a length, from config.json alone.

Used before any weights load, so `--lengths 1048576` on a small-window model is refused (or run
with `--force`) instead of grinding for an hour. The estimate is deliberately optimistic (a fast
device, the fused attention kernel): when even it says no, the run cannot finish.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ropebench.errors import RopebenchError

CPU_FLOPS = 2e11  # optimistic sustained float32 FLOP/s of a multi-core CPU
GPU_FLOPS = 3e14  # optimistic bf16 FLOP/s of a data-centre GPU
MAX_SECONDS_PER_SAMPLE = 900.0
MAX_BATCH_TOKENS = 65536  # the generation engine's default KV-cache tokens per batch


@dataclass(frozen=True)
class Estimate:
    bytes: float  # peak memory of one forward pass over `batch` prompts of `length` tokens
    seconds: float  # time of that forward (the prefill: decoding is cheap beside it)


def estimate(config: dict[str, Any], length: int, *, batch: int = 1, gpu: bool = False) -> Estimate:
    get = config.get
    hidden = int(get("hidden_size") or 0)
    layers = int(get("num_hidden_layers") or 0)
    heads = int(get("num_attention_heads") or 1)
    kv_heads = int(get("num_key_value_heads") or heads)
    head_dim = int(get("head_dim") or (hidden // max(heads, 1)))
    inter = int(get("intermediate_size") or 4 * hidden)
    vocab = int(get("vocab_size") or 0)
    width = 2 if gpu else 4  # bf16 on CUDA, float32 on CPU
    params = layers * (hidden * head_dim * (2 * heads + 2 * kv_heads) + 3 * hidden * inter)
    params += vocab * hidden
    tokens = length * batch
    weights = params * width
    kv_cache = 2 * layers * kv_heads * head_dim * tokens * width
    activations = tokens * (3 * hidden + 2 * inter) * width
    flops = 2 * params * tokens + 4 * layers * heads * head_dim * length * tokens
    return Estimate(weights + kv_cache + activations, flops / (GPU_FLOPS if gpu else CPU_FLOPS))


def available_bytes(gpu: bool) -> float | None:
    """Free device memory (GPU) or available RAM (CPU), None when unknown."""
    if gpu:
        import torch

        try:
            return float(torch.cuda.mem_get_info()[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(config: dict[str, Any], lengths: list[int], *, batch: int = 1,
               force: bool = False) -> None:
    """Refuse lengths whose forward pass cannot fit in memory or would take longer than
    `MAX_SECONDS_PER_SAMPLE` on an optimistic device, unless `force`."""
    if force or not lengths:
        return
    import torch

    gpu = torch.cuda.is_available()
    longest = max(lengths)
    batch = max(1, min(batch, MAX_BATCH_TOKENS // longest))  # long prompts go fewer at a time
    guess = estimate(config, longest, batch=batch, gpu=gpu)
    free = available_bytes(gpu)
    gib = 1024 ** 3
    if free is not None and guess.bytes > free:
        raise RopebenchError(
            f"length {longest} needs about {guess.bytes / gib:.1f} GiB for one forward pass "
            f"(batch {batch}), more than the {free / gib:.1f} GiB available; use shorter "
            "--lengths or a smaller --set backend.batch_size, or pass --force to try anyway"
        )
    single = estimate(config, longest, batch=1, gpu=gpu).seconds
    if single > MAX_SECONDS_PER_SAMPLE:
        raise RopebenchError(
            f"length {longest} takes at least {single / 60:.0f} min per sample on this "
            f"{'GPU' if gpu else 'CPU'} (one forward pass, optimistic); use shorter --lengths, "
            "or pass --force to run it anyway"
        )

"""Shared pieces of the benchmarks: fresh-process runs, the machine's matmul rate, FLOP counts."""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class ChildFailed(Exception):
    """A benchmark child process exited with an error; the message is its stderr's tail."""


def try_child(script: str, *args: str, timeout: float = 3600) -> dict:
    """Run `script --child ARGS` in a fresh interpreter; its last stdout line is a JSON dict.
    `spawned` (wall clock at launch) lets the child count process start-up and imports.
    Raises ChildFailed when the child fails."""
    env = {**os.environ, "BENCH_SPAWNED": repr(time.time())}
    out = subprocess.run(
        [sys.executable, script, "--child", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )
    if out.returncode != 0:
        raise ChildFailed(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_child(script: str, *args: str, timeout: float = 3600) -> dict:
    """`try_child`, ending the benchmark when the child fails."""
    try:
        return try_child(script, *args, timeout=timeout)
    except ChildFailed as failed:
        raise SystemExit(f"child {args} failed:\n{failed}") from None


def since_spawn() -> float:
    """Seconds since the parent launched this process (start-up and imports so far)."""
    return time.time() - float(os.environ.get("BENCH_SPAWNED", time.time()))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def matmul_flops_per_s(size: int = 2048, repeats: int = 8) -> float:
    """Float32 GEMM throughput of this machine with torch's current thread count: the best of
    `repeats` products of two size x size matrices after warm-up."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def growth_exponent(lengths: list[int], values: list[float]) -> float:
    """Least-squares slope of log(value) against log(length): 1 is linear growth."""
    xs = [math.log(x) for x in lengths]
    ys = [math.log(max(v, 1e-9)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


class FlopCounter:
    """Counts the useful forward FLOPs of a HF decoder-only model through hooks.

    Per layer and token: 2 x (q, k, v, o and MLP weights); attention: 4 x heads x head_dim per
    (query, visible key) pair, counting only real keys (the attention mask's ones) and the causal
    half of a prefill; the output head: 2 x hidden x vocab per position it is applied to. Padding
    and masked-out work are not useful and not counted.
    """

    def __init__(self, model) -> None:
        c = model.config
        h, layers = c.hidden_size, c.num_hidden_layers
        heads, kv = c.num_attention_heads, c.num_key_value_heads or c.num_attention_heads
        head_dim = getattr(c, "head_dim", None) or h // heads
        mlp = 3 * h * c.intermediate_size
        self.per_token = 2 * layers * (h * heads * head_dim * 2 + 2 * h * kv * head_dim + mlp)
        self.per_pair = 4 * layers * heads * head_dim
        self.per_head_row = 2 * h * c.vocab_size
        self.model = model
        self.flops = 0.0

    def _decoder_hook(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs["inputs_embeds"]
        queries = ids.shape[1]
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        past = cache.get_seq_length() if cache is not None else 0
        mask = kwargs.get("attention_mask")
        padded = mask is not None and mask.dim() == 2
        for row in range(ids.shape[0]):
            if padded:  # only the row's real tokens count, as queries and as keys
                real = int(mask[row].sum())  # real keys once this call's tokens are in
                new = min(queries, real)
                before = real - new
            else:
                new, before = queries, past
            pairs = new * before + new * (new + 1) // 2  # causal: query t sees keys up to t
            self.flops += self.per_token * new + self.per_pair * pairs

    def _head_hook(self, module, args, output) -> None:
        self.flops += self.per_head_row * args[0].numel() // args[0].shape[-1]

    @contextmanager
    def counting(self):
        from ropebench.backends.hf import decoder_and_head

        base, head = decoder_and_head(self.model)
        hooks = [
            base.register_forward_pre_hook(self._decoder_hook, with_kwargs=True),
            head.register_forward_hook(self._head_hook),
        ]
        try:
            yield self
        finally:
            for hook in hooks:
                hook.remove()

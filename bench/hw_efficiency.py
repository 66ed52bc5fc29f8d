"""Hardware efficiency of evaluation: useful forward FLOPs over (measured matmul rate x wall time).

The rate is a float32 GEMM measured in this run with the same threads; the FLOPs are counted by
hooks on the model (`_common.FlopCounter`: weights, causal attention over real tokens, the output
head where it is applied), so padding or recomputation would lower the figure, not raise it. The
wall time is the whole task call: sample building, tokenization, generation and scoring. An
efficiency of 1 would mean every second went into matmul-rate arithmetic; the rest is overhead.

Workloads on the reference model, extended with YaRN to the longest length:
- needle_ppl: needle-driven perplexity (the LongRoPE2 search fitness), pure prefill;
- ppl: perplexity of one window per document;
- niah_single_1: RULER generation (long prefill, up to 128 new tokens).

    .venv/bin/python bench/hw_efficiency.py --lengths 4096,8192,16384
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import FlopCounter, matmul_flops_per_s


def run_task(model, tokenizer, task: str, length: int, samples: int) -> None:
    from ropebench.backends.hf import HFBackend
    from ropebench.run.evaluate import run_evaluation

    run_evaluation(
        HFBackend(model, tokenizer),
        method="yarn",
        tasks=[task],
        lengths=[length],
        samples=samples,
        seed=0,
        out_dir=tempfile.mkdtemp(),
        progress=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="4096,8192,16384")
    parser.add_argument("--tasks", default="needle_ppl,ppl,niah_single_1")
    parser.add_argument("--samples", type=int, default=8)  # one full generation batch
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]

    from ropebench.methods import get_extender
    from ropebench.model.load import load_model
    from ropebench.model.patch import apply_scaling, spec_of

    rate = matmul_flops_per_s()
    model, tokenizer = load_model("reference")
    apply_scaling(model, get_extender("yarn").rescale(spec_of(model), max(lengths)))
    # Warm-up: kernels, haystack caches, word lists (one-time costs a real sweep amortises).
    for task in args.tasks.split(","):
        run_task(model, tokenizer, task, 1024, 1)
    print(f"float32 GEMM (2048^3): {rate / 1e9:.1f} GFLOP/s")
    print(
        f"{'task':14s} {'length':>6s} {'GFLOP':>8s} {'seconds':>8s} {'GFLOP/s':>8s} {'efficiency':>10s}"
    )
    long_flops = long_seconds = 0.0
    for task in args.tasks.split(","):
        for length in lengths:
            counter = FlopCounter(model)
            start = time.perf_counter()
            with counter.counting():
                run_task(model, tokenizer, task, length, args.samples)
            seconds = time.perf_counter() - start
            efficiency = counter.flops / (rate * seconds)
            if length == max(lengths):
                long_flops, long_seconds = long_flops + counter.flops, long_seconds + seconds
            print(
                f"{task:14s} {length:6d} {counter.flops / 1e9:8.1f} {seconds:8.2f} "
                f"{counter.flops / seconds / 1e9:8.1f} {efficiency:10.2f}"
            )
    overall = long_flops / (rate * long_seconds)
    print(f"all tasks at {max(lengths)} tokens: efficiency {overall:.2f}")
    print(f"ratio: {overall:.2f}")


if __name__ == "__main__":
    main()

"""Throughput of the scale-out paths, side by side in one run.

    python bench/scale_throughput.py vllm   # RULER samples/s, --backend vllm vs --backend hf
    python bench/scale_throughput.py dp     # eval wall time, torchrun 2 processes vs 1
    python bench/scale_throughput.py search # LongRoPE2 search wall time, torchrun 2 processes vs 1

Each line ends `ratio: X` (X > 1: the first is faster). The same model, samples and lengths on
both sides; engine load time is included in the wall time and also printed separately for vLLM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARGS = ["eval", "reference", "--method", "yarn", "--target-length", "4096",
        "--tasks", "niah_single_1", "--lengths", "4096", "--samples", "8", "--no-progress"]
SEARCH = ["search", "reference", "--method", "longrope2", "--target-length", "4096",
          "--set", "search.population=8", "--set", "search.iterations=2",
          "--set", "search.documents=2", "--no-progress"]
TORCHRUN = ["-m", "torch.distributed.run", "--nproc_per_node", "2"]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True,
                          env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
    if done.returncode:
        sys.exit(done.stdout[-2000:] + done.stderr[-2000:])
    return time.perf_counter() - start


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "vllm"
    samples = 8
    with tempfile.TemporaryDirectory() as tmp:
        if which == "vllm":
            hf = timed([sys.executable, "-m", "ropebench", *ARGS, "--out", f"{tmp}/hf"])
            vl = timed([sys.executable, "-m", "ropebench", *ARGS, "--backend", "vllm",
                        "--out", f"{tmp}/vl"])
            print(f"RULER niah_single_1 @4096 x{samples}: hf {samples / hf:.3f} samples/s "
                  f"({hf:.0f} s), vllm {samples / vl:.3f} samples/s ({vl:.0f} s, incl. export "
                  f"and engine load) ratio: {hf / vl:.2f}")
        elif which == "search":
            one = timed([sys.executable, "-m", "ropebench", *SEARCH, "--out", f"{tmp}/one.json"])
            two = timed([sys.executable, *TORCHRUN, "-m", "ropebench", *SEARCH,
                         "--out", f"{tmp}/two.json"])
            same = all(json.loads(Path(f"{tmp}/{n}.json").read_text())[k] ==
                       json.loads(Path(f"{tmp}/one.json").read_text())[k]
                       for n in ("two",) for k in ("long_factor", "fitness_history"))
            evals = json.loads(Path(f"{tmp}/one.json").read_text())["evaluations"]
            print(f"search longrope2 @4096, {evals} evaluations: 1 process {one:.0f} s, "
                  f"2 processes {two:.0f} s (same factors and history: {same}) "
                  f"ratio: {one / two:.2f}")
        else:
            one = timed([sys.executable, "-m", "ropebench", *ARGS, "--out", f"{tmp}/one"])
            two = timed([sys.executable, *TORCHRUN, "-m", "ropebench", *ARGS, "--out", f"{tmp}/two"])
            print(f"eval wall: 1 process {one:.0f} s, 2 processes {two:.0f} s ratio: {one / two:.2f}")


if __name__ == "__main__":
    main()

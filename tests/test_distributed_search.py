"""Data-parallel search: `torchrun --nproc_per_node 2 -m ropebench search ...` (two real processes,
gloo) finds the factors and fitness history of one process, writes its files from rank 0 only,
and a checkpoint resumes under another number of processes with the same result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SEARCH = ["search", "reference", "--method", "longrope2", "--target-length", "1024",
          "--set", "search.population=5", "--set", "search.documents=2", "--no-progress"]
KEYS = ("long_factor", "short_factor", "critical_index", "fitness_history", "best_fitness",
        "baseline_fitness", "evaluations")


def _run(args: list[str], procs: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(procs),
                "--master_port", "29519"] if procs > 1 else []
    done = subprocess.run([sys.executable, *launcher, "-m", "ropebench", *args], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _result(path: Path) -> dict:
    data = json.loads(path.read_text())
    return {key: data[key] for key in KEYS}


def test_two_processes_search_like_one_and_resume_under_another_count(tmp_path):
    _run([*SEARCH, "--set", "search.iterations=2", "--out", str(tmp_path / "one.json")], 1)
    _run([*SEARCH, "--set", "search.iterations=2", "--out", str(tmp_path / "two.json")], 2)
    one = _result(tmp_path / "one.json")
    assert one["evaluations"] > 5 and len(one["fitness_history"]) == 3
    assert _result(tmp_path / "two.json") == one
    # The two checkpoints hold the same state (written by rank 0 alone: no torn or extra files).
    state = [json.loads((tmp_path / f"{n}.json.checkpoint.json").read_text())["state"]
             for n in ("one", "two")]
    for s in state:
        s.pop("seconds")
    assert state[0] == state[1]
    # (the hidden `.NAME.lock` files are the output locks, which stay by design)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        "one.json", "one.json.checkpoint.json", "two.json", "two.json.checkpoint.json"]

    # Resume: one generation under one process, extended to two generations under two, and back.
    for first, second, name in ((1, 2, "up"), (2, 1, "down")):
        out = tmp_path / f"{name}.json"
        _run([*SEARCH, "--set", "search.iterations=1", "--out", str(out)], first)
        assert len(json.loads(out.read_text())["fitness_history"]) == 2
        _run([*SEARCH, "--set", "search.iterations=2", "--out", str(out)], second)
        assert _result(out) == one, name

"""Data-parallel evaluation: `torchrun --nproc_per_node 2 -m ropebench eval ...` (two real
processes, gloo) writes the same rows and summary as one process, and resumes a partial run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EVAL = ["eval", "reference", "--method", "yarn", "--target-length", "1024", "--lengths", "256,512",
        "--samples", "3", "--no-progress", "--set", "backend.batch_size=2"]


def _run(args: list[str], procs: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    launcher = [] if procs == 1 else ["-m", "torch.distributed.run", "--nproc_per_node",
                                      str(procs), "--master_port", "29517"]
    cmd = [sys.executable, *launcher, "-m", "ropebench", *args] if procs > 1 else [
        sys.executable, "-m", "ropebench", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _rows(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("seconds")
        if isinstance(row.get("metadata"), dict):
            row["metadata"].pop("seconds", None)
    return rows


def _key(row: dict):
    return (row["task"], row["length"], row["index"])


def test_two_processes_write_the_rows_of_one(tmp_path):
    tasks = ["--tasks", "niah_single_1,passkey,ppl"]
    _run([*EVAL, *tasks, "--out", str(tmp_path / "one")], 1)
    _run([*EVAL, *tasks, "--out", str(tmp_path / "two")], 2)
    one, two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert len({_key(r) for r in two}) == len(two), "duplicate rows"
    assert sorted(two, key=_key) == sorted(one, key=_key)
    assert (tmp_path / "one" / "summary.csv").read_text() == (tmp_path / "two" / "summary.csv").read_text()

    # Resume under two processes: a run with one task done finishes the rest, no duplicates.
    part = tmp_path / "resumed"
    _run([*EVAL, "--tasks", "passkey", "--out", str(part)], 1)
    _run([*EVAL, *tasks, "--out", str(part)], 2)
    resumed = _rows(part)
    assert len({_key(r) for r in resumed}) == len(resumed)
    assert sorted(resumed, key=_key) == sorted(one, key=_key)

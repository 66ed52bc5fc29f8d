"""`torchrun --nproc_per_node 2 -m ropebench compare PLAN` (two real processes, gloo): the search,
the training and every evaluation run data parallel, rank 0 alone writes, and the run holds what
one process writes (training: 2 processes x 1 row = 1 process x 2 accumulated rows)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow


def _plan(path: Path, grad_accum: int) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "dp", "model": "reference", "target_length": 1024,
        "search": {"population": 4, "iterations": 1, "parents": 2, "mutations": 2,
                   "crossovers": 2, "documents": 1},
        "train": {"steps": 2, "lr": 1.0e-4, "warmup_steps": 0, "batch_size": 1,
                  "grad_accum": grad_accum, "log_every": 1, "save_every": 0},
        "methods": ["none", {"method": "yarn", "train": False}, "longrope2"],
        "evaluate": {"tasks": ["niah_single_1", "ppl"], "lengths": [256, 1024], "samples": 3,
                     "options": {"max_new_tokens": 12, "haystack": "pydoc"}},
    }))
    return path


def _compare(plan: Path, out: Path, procs: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(procs),
                "--master_port", "29523"] if procs > 1 else []
    done = subprocess.run([sys.executable, *launcher, "-m", "ropebench", "compare", str(plan),
                           "--out", str(out), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _rows(out: Path) -> dict[tuple, dict]:
    rows = {}
    for path in sorted(out.glob("stages/eval/*/rows.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            row.pop("seconds")
            if isinstance(row.get("metadata"), dict):
                row["metadata"].pop("seconds", None)
            key = (row["method"], row["task"], row["length"], row["index"])
            assert key not in rows, f"duplicate row {key}"
            rows[key] = row
    return rows


def _scalings(out: Path) -> dict[str, dict]:
    found = {}
    for path in out.glob("stages/scaling/*/scaling.json"):
        data = json.loads(path.read_text())
        data.get("extra", {}).pop("seconds", None)
        found[path.parent.name] = data
    return found


def test_two_processes_run_a_plan_like_one(tmp_path):
    _compare(_plan(tmp_path / "one.yaml", grad_accum=2), tmp_path / "one", 1)
    _compare(_plan(tmp_path / "two.yaml", grad_accum=1), tmp_path / "two", 2)

    # The searched factors and the untrained methods' rows: identical.
    assert _scalings(tmp_path / "two") == _scalings(tmp_path / "one")
    one, two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert two.keys() == one.keys()
    assert sum(key[1] == "niah_single_1" for key in one) == 3 * 2 * 3  # methods x lengths x samples
    for key, row in one.items():
        other = two[key]
        if key[0] == "longrope2" and row["task"] == "ppl":
            # Trained: the same gradients summed in another order (1e-4 on the weights).
            assert other["score"] == pytest.approx(row["score"], rel=1e-3), key
        elif key[0] == "longrope2":
            assert other["prediction"] == row["prediction"], key
        else:
            assert other == row, key

    # Rank 0 alone wrote: one done marker per stage, one run log, the same files as one process.
    def files(out: Path) -> set[str]:
        # Stage folders are `<label>-<key>`; the trained stages' keys differ with grad_accum.
        return {re.sub(r"-[0-9a-f]{8,}(/|$)", r"\1", str(p.relative_to(out)))
                for p in out.rglob("*") if p.is_file()}
    assert files(tmp_path / "two") == files(tmp_path / "one")
    log = [json.loads(line) for line in (tmp_path / "two" / "runlog.jsonl").read_text().splitlines()]
    assert [e["event"] for e in log].count("run_start") == 1
    assert log[0]["processes"] == 2

"""Multi-process training: `torchrun --nproc_per_node 2 -m ropebench train ...` (two real gloo
processes, DDP through accelerate) follows the loss curve of one process with the same global
batch, resumes its own checkpoint under two processes, and exports from rank 0 alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TRAIN = ["train", "reference", "--method", "yarn", "--target-length", "1024",
         "--set", "train.steps=6", "--set", "train.lr=1e-3", "--set", "train.warmup_steps=2",
         "--set", "train.batch_size=1", "--set", "train.log_every=1"]

# Runs `ropebench` with the optimizer failing on its 5th step: an interruption after the
# checkpoint of step 4, on every rank at the same point.
INTERRUPT = """
import sys
import torch
from ropebench.cli.main import main

original, calls = torch.optim.AdamW.step, {"n": 0}

def failing_step(self, *a, **k):
    calls["n"] += 1
    if calls["n"] > 4:
        raise KeyboardInterrupt
    return original(self, *a, **k)

torch.optim.AdamW.step = failing_step
sys.exit(main(sys.argv[1:]))
"""


def _run(args: list[str], procs: int, script: Path | None = None, ok: bool = True) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(procs),
                "--master_port", "29521"] if procs > 1 else []
    target = [str(script)] if script is not None else ["-m", "ropebench"]
    done = subprocess.run([sys.executable, *launcher, *target, *args], env=env,
                          capture_output=True, text=True, timeout=900)
    assert (done.returncode == 0) == ok, done.stdout[-3000:] + done.stderr[-3000:]


def _losses(out: Path) -> list[float]:
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in log] == list(range(1, 7))
    return [line["loss"] for line in log]


def test_two_processes_train_like_one_with_the_same_global_batch(tmp_path):
    # Global batch 2 rows: one process accumulating two micro-batches, or two processes of one.
    _run([*TRAIN, "--set", "train.grad_accum=2", "--out", str(tmp_path / "one")], 1)
    _run([*TRAIN, "--set", "train.grad_accum=1", "--out", str(tmp_path / "two")], 2)
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    print("losses, 1 process:", one, "2 processes:", two)
    assert two == pytest.approx(one, rel=1e-4, abs=1e-5)
    result = [json.loads((tmp_path / n / "train_result.json").read_text()) for n in ("one", "two")]
    assert result[0]["tokens"] == result[1]["tokens"]
    assert not (tmp_path / "two" / "checkpoint").exists()

    # The exported weights of both runs agree.
    from safetensors.torch import load_file

    a, b = (load_file(next((tmp_path / n).glob("*.safetensors"))) for n in ("one", "two"))
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max() < 1e-4, key

    # Interrupted after the checkpoint of step 4 under two processes, resumed under two.
    script = tmp_path / "interrupt.py"
    script.write_text(INTERRUPT)
    part = tmp_path / "resumed"
    _run([*TRAIN, "--set", "train.save_every=2", "--out", str(part)], 2, script, ok=False)
    assert json.loads((part / "checkpoint" / "progress.json").read_text())["step"] == 4
    _run([*TRAIN, "--set", "train.save_every=2", "--out", str(part)], 2)
    assert _losses(part) == pytest.approx(two, rel=1e-4, abs=1e-5)
    assert (part / "train_result.json").is_file() and not (part / "checkpoint").exists()

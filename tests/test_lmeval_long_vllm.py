"""`lmeval_long` through the vLLM backend's lm-eval model (`backends/lmeval_vllm.py`).

Runs where vllm is importable (`make test-vllm`); skipped in the main environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm")

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_lm_eval_model_runs_on_one_of_the_backends_engines(tmp_path):
    from ropebench.backends.vllm import VLLMBackend, export_for_vllm

    backend = VLLMBackend(export_for_vllm("reference", None, tmp_path / "m"))
    lm = backend.lm_eval_model(512)
    try:
        assert lm.model is next(reversed(backend._engines.values()))
        assert lm.max_length == 512
    finally:
        backend.close()


def _eval(tmp_path: Path, backend: str) -> dict[tuple, dict]:
    out = tmp_path / backend
    done = subprocess.run(
        [sys.executable, "-m", "ropebench", "eval", "reference", "--tasks", "lmeval_long",
         "--lengths", "512", "--samples", "2", "--backend", backend,
         "--set", f"lmeval_long.data={tmp_path / 'data'}",
         "--set", "lmeval_long.tasks=infinitebench_passkey,niah_single_1",
         "--out", str(out), "--no-progress"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    return {(r["metadata"]["lm_eval_task"], r["index"]): r for r in rows}


def test_lm_eval_ruler_and_infinitebench_on_vllm_score_as_on_hf(tmp_path):
    data = tmp_path / "data" / "infinitebench"
    data.mkdir(parents=True)
    filler = "The sky was grey and the streets were quiet that morning. "
    data.joinpath("passkey.jsonl").write_text("".join(json.dumps(
        {"id": i, "context": filler * 60 + f"The pass key is {71234 + i}. " + filler * 60,
         "input": "What is the pass key?", "answer": [str(71234 + i)], "options": []}) + "\n"
        for i in range(2)))
    vllm_rows, hf_rows = _eval(tmp_path, "vllm"), _eval(tmp_path, "hf")
    assert {task for task, _ in vllm_rows} == {"infinitebench_passkey", "niah_single_1"}
    assert all(0.0 <= r["score"] <= 1.0 and r["input_tokens"] <= 514 for r in vllm_rows.values())
    # lm-eval's own requests, generated greedily on either engine, score the same.
    assert vllm_rows.keys() == hf_rows.keys()
    for key, row in vllm_rows.items():
        assert row["score"] == hf_rows[key]["score"], key

"""A comparison plan evaluated on vLLM gives the HF backend's rows; its search and training run on HF.

Runs for real where vllm is importable (`make test-vllm`); skipped in the main environment.
Tolerances are `tests/test_vllm_backend.py`'s: predictions and pass/fail scores equal, perplexity
within 1e-3 relative.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("vllm")

pytestmark = pytest.mark.slow

PLAN = {
    "name": "engines", "model": "reference", "target_length": 4096,
    "search": {"population": 2, "iterations": 1, "documents": 1, "spread_sets": 0},
    "methods": ["none", {"method": "yarn", "train": {"steps": 2, "warmup_steps": 0,
                                                     "save_every": 0}},
                "longrope2"],
    "evaluate": {"tasks": ["passkey", "ppl"], "lengths": [512, 2048], "samples": 3, "seed": 1},
}


def compare(tmp_path: Path, backend: str) -> tuple[Path, str]:
    plan = tmp_path / f"{backend}.yaml"
    plan.write_text(yaml.safe_dump({**PLAN, "backend": {"name": backend}}))
    run = tmp_path / backend
    done = subprocess.run([sys.executable, "-m", "ropebench", "compare", str(plan), "--out",
                           str(run)], capture_output=True, text=True, timeout=1500,
                          env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return run, done.stderr


def stage_files(run: Path, name: str) -> dict[str, list[dict]]:
    """Per method label, the records of one kind of file across its evaluation stages."""
    manifest = json.loads((run / "manifest.json").read_text())
    found = {}
    for method in manifest["methods"]:
        rows = []
        for stage in method["evals"].values():
            rows += [json.loads(line) for line in (run / stage["path"] / name).read_text().splitlines()]
        found[method["label"]] = rows
    return found


def test_a_vllm_plan_gives_the_hf_plans_rows(tmp_path):
    hf_run, _ = compare(tmp_path, "hf")
    vl_run, said = compare(tmp_path, "vllm")
    assert "search stages run on the hf backend" in said
    assert "train stages run on the hf backend" in said
    hf, vl = stage_files(hf_run, "rows.jsonl"), stage_files(vl_run, "rows.jsonl")
    assert hf.keys() == vl.keys() == {"none", "yarn", "longrope2"}
    for label in hf:
        a_rows = {(r["task"], r["length"], r["index"]): r for r in hf[label]}
        b_rows = {(r["task"], r["length"], r["index"]): r for r in vl[label]}
        assert a_rows.keys() == b_rows.keys() and a_rows, label
        for key, a in a_rows.items():
            b = b_rows[key]
            if a["task"] == "ppl":
                assert b["score"] == pytest.approx(a["score"], rel=1e-3), (label, key)
            else:
                assert (b["prediction"], b["score"]) == (a["prediction"], a["score"]), (label, key)
    # The search and the training ran on HF in both runs: the same factors, the same losses.
    for kind, name in (("scaling", "scaling.json"), ("train", "losses.json")):
        for a, b in zip(sorted((hf_run / "stages" / kind).rglob(name)),
                        sorted((vl_run / "stages" / kind).rglob(name)), strict=True):
            left, right = json.loads(a.read_text()), json.loads(b.read_text())
            for record in (left, right):
                record.pop("seconds", None)
                record.get("extra", {}).pop("seconds", None)
            assert left == right, (a, b)

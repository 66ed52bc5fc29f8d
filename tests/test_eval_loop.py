"""The evaluation loop and `ropebench eval`: rows, summary, resume, batching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import complete, tiny_llama

from ropebench.backends.hf import HFBackend
from ropebench.cli.main import main
from ropebench.run.evaluate import read_rows, run_evaluation

ROW_KEYS = {
    "task",
    "length",
    "method",
    "score",
    "prediction",
    "references",
    "input_tokens",
    "seconds",
    "index",
    "metadata",
}
FIXTURES = Path(__file__).parent / "fixtures"



@pytest.fixture(scope="module")
def model():
    return tiny_llama(window=512, seed=1)


def test_batched_generation_equals_one_at_a_time(model, tok):
    texts = [
        "def f(x):",
        "The grass is green. The sky is",
        "Return a new list containing all items from the",
    ]
    alone = complete(model, tok, texts, 6, batch_size=1)
    batched = complete(model, tok, texts, 6, batch_size=3)
    assert [c.text for c in batched] == [c.text for c in alone]
    assert [c.input_tokens for c in batched] == [len(tok(t).input_ids) for t in texts]


def test_run_evaluation_writes_rows_summary_and_resumes(model, tok, tmp_path):
    options = {"haystack": "pydoc", "max_new_tokens": 8, "niah": {"depths": [0, 100]}}
    kwargs = dict(
        method="none",
        lengths=[512],
        samples=2,
        seed=0,
        out_dir=tmp_path,
        options=options,
        progress=False,
    )
    rows = run_evaluation(HFBackend(model, tok), tasks=["niah_single_1", "passkey", "niah", "ppl"], **kwargs)
    assert len(rows) == 2 + 2 + 4 + 1
    stored = read_rows(tmp_path)
    assert all(ROW_KEYS <= set(row) for row in stored)
    assert {r["task"] for r in stored} == {"niah_single_1", "passkey", "niah", "ppl"}
    assert {r["metadata"]["depth"] for r in stored if r["task"] == "niah"} == {0, 100}
    ppl = next(r for r in stored if r["task"] == "ppl")
    assert ppl["score"] > 1
    summary = (tmp_path / "summary.csv").read_text().splitlines()
    assert summary[0] == "method,task,length,n,score,ci_low,ci_high,prompt_tokens" and len(summary) == 5

    # A re-run with one more sample per task adds only the missing rows.
    run_evaluation(HFBackend(model, tok), tasks=["niah_single_1"],
                   **{**kwargs, "samples": 3, "options": {"haystack": "pydoc", "max_new_tokens": 8}})
    again = read_rows(tmp_path)
    assert len(again) == len(stored) + 1
    assert sorted(r["index"] for r in again if r["task"] == "niah_single_1") == [0, 1, 2]


def test_tasks_that_do_not_fit_are_skipped_with_a_warning(model, tok, tmp_path, capsys):
    rows = run_evaluation(HFBackend(model, tok),
        method="none",
        tasks=["niah_single_1", "passkey"],
        lengths=[200],
        samples=1,
        seed=0,
        out_dir=tmp_path,
        options={"max_new_tokens": 4},
        progress=False,
    )
    assert set(rows["task"]) == {"passkey"}
    assert "skipping niah_single_1 at 200" in capsys.readouterr().err


def test_eval_command_runs_ruler_offline(model, tok, tmp_path):
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    out = tmp_path / "eval"
    code = main(
        [
            "eval",
            str(model_dir),
            "--method",
            "yarn",
            "--target-length",
            "2048",
            "--tasks",
            "ruler",
            "--lengths",
            "512,1024",
            "--samples",
            "1",
            "--out",
            str(out),
            "--no-progress",
            # The test tokenizer spends ~3x the tokens of a real one: drop the one-shot examples.
            "--set",
            "tasks.haystack=pydoc",
            "--set",
            "tasks.max_new_tokens=4",
            "--set",
            "vt.example_length=0",
            "--set",
            "cwe.shots=0",
            "--set",
            f"tasks.squad_path={FIXTURES / 'squad_dev_tiny.json'}",
            "--set",
            f"tasks.hotpotqa_path={FIXTURES / 'hotpot_dev_distractor_tiny.json'}",
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert {r["method"] for r in rows} == {"yarn"}
    assert len({r["task"] for r in rows if r["length"] == 1024}) == 13
    assert all(0 <= r["score"] <= 1 for r in rows)


def test_eval_command_rejects_bad_input(tmp_path, capsys):
    assert main(["eval", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main(["eval", "reference", "--tasks", "nope", "--out", str(tmp_path / "o")]) == 2


def test_generation_stops_at_newline_when_asked(model, tok):
    (completion,) = complete(model, tok, ["Here we go."], 12, stop_at_newline=True)
    assert "\n" not in completion.text
    torch.manual_seed(0)

"""`lmeval_long`: lm-eval long-context tasks at each length, from local data in each benchmark's
record format, on the shipped reference model, through `eval` and a `compare` plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ropebench.errors import RopebenchError
from ropebench.tasks.lmeval_families import babilong_bucket, middle_truncate
from ropebench.tasks.lmeval_long import LmevalLong

ROOT = Path(__file__).resolve().parents[1]
TASKS = "babilong_qa1,longbench_hotpotqa"
PEOPLE = ["Mary", "John", "Daniel", "Sandra"]
PLACES = ["kitchen", "garden", "office", "hallway"]


def _jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def build_data(root: Path, n: int = 3) -> Path:
    """BABILong qa1 in buckets 0k and 1k (RMT-team/babilong-1k-samples fields) and LongBench
    hotpotqa (LongBench fields), a few records each."""
    filler = "The sky was grey and the streets were quiet that morning. "
    for bucket, pad in (("0k", 0), ("1k", 30)):
        records = []
        for i in range(n):
            who, where = PEOPLE[i % 4], PLACES[(i + 1) % 4]
            facts = f"{who} went to the {PLACES[i % 4]}. " + filler * pad + f"{who} moved to the {where}."
            records.append({"input": facts, "question": f"Where is {who}?",
                            "target": where})
        _jsonl(root / "babilong" / bucket / "qa1.jsonl", records)
    records = []
    for i in range(n):
        context = (f"Passage 1:\n{PEOPLE[i % 4]} was born in Paris. " + filler * 60
                   + "Passage 2:\nParis is the capital of France.")
        records.append({"context": context, "question": f"Where was {PEOPLE[i % 4]} born?",
                        "answers": ["Paris"], "all_classes": None, "length": len(context.split()),
                        "_id": str(i)})
    _jsonl(root / "longbench" / "hotpotqa.jsonl", records)
    return root


def test_babilong_buckets_map_each_length_to_the_largest_that_fits(tmp_path):
    data = build_data(tmp_path / "data")
    assert babilong_bucket(data, "babilong_qa1", 512)[0] == "0k"
    assert babilong_bucket(data, "babilong_qa1", 1024)[0] == "1k"
    assert babilong_bucket(data, "babilong_qa1", 4096)[0] == "1k"
    (data / "babilong" / "0k" / "qa1.jsonl").unlink()
    with pytest.raises(RopebenchError, match="no length bucket of at most 512"):
        babilong_bucket(data, "babilong_qa1", 512)


def test_middle_truncation_keeps_both_ends(tok):
    text = "alpha " + "filler words here " * 200 + "omega"
    cut = middle_truncate(text, tok, 64)
    ids = tok(cut, add_special_tokens=False)["input_ids"]
    assert cut.startswith("alpha") and cut.endswith("omega")
    assert len(ids) <= 66  # decode/re-encode may merge at the seam
    assert middle_truncate("short text", tok, 64) == "short text"


@pytest.mark.parametrize("values, message", [
    ({"tasks": "babilong_qa1,scrolls_qasper"}, "does not support the lm-eval task 'scrolls_qasper'"),
    ({"tasks": "longbench_nosuch"}, "does not support"),
    ({}, "give --set lmeval_long.data=DIR"),
])
def test_unknown_tasks_and_missing_data_are_refused(values, message):
    with pytest.raises(RopebenchError, match=message):
        LmevalLong().parse_options(values)


def test_a_folder_in_the_wrong_format_is_refused(tmp_path):
    data = build_data(tmp_path / "data")
    _jsonl(data / "longbench" / "hotpotqa.jsonl", [{"input": "x", "answers": ["y"]}])
    with pytest.raises(RopebenchError, match="is not a longbench record"):
        LmevalLong().parse_options({"tasks": TASKS, "data": str(data)})


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "ropebench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_bad_data_exits_2_in_one_line_before_weights_load(tmp_path):
    data = build_data(tmp_path / "data")
    (data / "babilong" / "0k" / "qa1.jsonl").write_text("not json\n")
    done = _cli("eval", "reference", "--tasks", "lmeval_long", "--lengths", "512",
                "--set", f"lmeval_long.data={data}", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "not a babilong record" in done.stderr


def test_a_length_below_every_bucket_exits_2_before_weights_load(tmp_path):
    data = build_data(tmp_path / "data")
    (data / "babilong" / "0k" / "qa1.jsonl").unlink()
    done = _cli("eval", "reference", "--tasks", "lmeval_long", "--lengths", "512,1024",
                "--set", f"lmeval_long.data={data}", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "no length bucket of at most 512" in done.stderr
    assert not (tmp_path / "out").exists()


def _check_cells(summary: pd.DataFrame, n: int) -> None:
    cells = summary[summary["task"] == "lmeval_long"]
    got = {(s, int(length)): int(k) for s, length, k in
           zip(cells["subtask"], cells["length"], cells["n"], strict=True)}
    assert got == {(t, length): n for t in TASKS.split(",") for length in (512, 1024)}
    assert cells["score"].between(0, 100).all()
    assert (cells["ci_low"] <= cells["score"]).all() and (cells["score"] <= cells["ci_high"]).all()


@pytest.mark.slow
def test_eval_runs_two_lm_eval_tasks_at_two_lengths(tmp_path):
    data = build_data(tmp_path / "data")
    out = tmp_path / "out"
    done = _cli("eval", "reference", "--tasks", "lmeval_long", "--lengths", "512,1024",
                "--samples", "3", "--set", f"lmeval_long.data={data}", "--out", str(out),
                "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    _check_cells(pd.read_csv(out / "summary.csv"), 3)
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    buckets = {(r["length"], r["metadata"]["lm_eval_task"]): r["metadata"]["bucket"] for r in rows}
    assert buckets == {(512, "babilong_qa1"): "0k", (1024, "babilong_qa1"): "1k",
                       (512, "longbench_hotpotqa"): "middle",
                       (1024, "longbench_hotpotqa"): "middle"}
    babi = {r["length"]: r["input_tokens"] for r in rows
            if r["metadata"]["lm_eval_task"] == "babilong_qa1"}
    assert babi[512] < babi[1024] <= 1024  # the 1k bucket's longer haystack, whole
    # LongBench prompts are cut to the length; the context here is longer than 512 tokens
    hotpot = [r for r in rows if r["metadata"]["lm_eval_task"] == "longbench_hotpotqa"]
    assert max(r["input_tokens"] for r in hotpot if r["length"] == 512) <= 514
    assert min(r["input_tokens"] for r in hotpot if r["length"] == 1024) > 514


@pytest.mark.slow
def test_a_compare_plan_reports_lm_eval_tasks_by_length(tmp_path):
    data = build_data(tmp_path / "data")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({
        "name": "lmeval-long", "model": "reference", "target_length": 1024, "methods": ["none"],
        "evaluate": {"tasks": ["lmeval_long"], "lengths": [512, 1024], "samples": 2,
                     "options": {"lmeval_long": {"tasks": TASKS, "data": str(data)}}},
    }))
    run = tmp_path / "run"
    done = _cli("compare", str(plan), "--out", str(run), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    _check_cells(pd.concat(pd.read_csv(p) for p in run.rglob("summary.csv")), 2)
    done = _cli("report", str(run), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    cells = pd.read_csv(run / "tables" / "cells.csv")
    _check_cells(cells.rename(columns={"low": "ci_low", "high": "ci_high"}), 2)
    table = pd.read_csv(run / "tables" / "lmeval_long.csv").set_index("method")
    html = (run / "report.html").read_text()
    for name in TASKS.split(","):
        for length in (512, 1024):
            column = f"{name} @ {length}"
            assert {column, f"{column} low", f"{column} high", f"{column} n"} <= set(table)
            assert table.loc["none", f"{column} n"] == 2
            assert column in html


def test_a_rewritten_data_folder_changes_the_rows_inputs(tmp_path):
    from ropebench.run.evaluate import option_files

    data = build_data(tmp_path / "data")
    before = option_files({"data": str(data)})
    path = data / "longbench" / "hotpotqa.jsonl"
    path.write_text(path.read_text().replace("Paris", "Rome"))
    assert before["data_files"] and option_files({"data": str(data)}) != before

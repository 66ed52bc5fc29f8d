"""`lmeval_long`'s LongBench v2, InfiniteBench and lm-eval RULER families: lengths to buckets,
truncation, refusals before weights load, and one run through `ropebench eval` on the reference
model. Fixtures are written here in each benchmark's own record format; nothing is downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ropebench.errors import RopebenchError
from ropebench.tasks.lmeval_families import build, check_length, longbench2_label
from ropebench.tasks.lmeval_long import LmevalLong

ROOT = Path(__file__).resolve().parents[1]
TASKS = "longbench2_academic_single,infinitebench_passkey,niah_single_1"
FILLER = "The sky was grey and the streets were quiet that morning. "


def _jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def build_data(root: Path, n: int = 3, labels: tuple[str, ...] = ("short",)) -> Path:
    """LongBench v2 records as THUDM/LongBench-v2's data.json carries them (choice_A..D, answer
    letter, length label) and InfiniteBench passkey records (xinrongzhang2022/InfiniteBench)."""
    records = []
    for label in labels:
        for i in range(n):
            records.append({
                "_id": f"{label}{i}", "domain": "Single-Document QA", "sub_domain": "Academic",
                "difficulty": "easy", "length": label, "question": "Where was Mary born?",
                "choice_A": "Paris", "choice_B": "Rome", "choice_C": "Oslo", "choice_D": "Lima",
                "answer": "A", "context": "Mary was born in Paris. " + FILLER * 80 + "The end.",
            })
    _jsonl(root / "longbench2" / "academic_single.jsonl", records)
    _jsonl(root / "infinitebench" / "passkey.jsonl", [
        {"id": i, "context": FILLER * 60 + f"The pass key is {71234 + i}. Remember it. "
         + FILLER * 60, "input": "What is the pass key?", "answer": [str(71234 + i)],
         "options": []} for i in range(n)])
    return root


def test_longbench2_labels_by_length():
    assert [longbench2_label(n) for n in (512, 31_999, 32_000, 127_999, 128_000, 2_000_000)] == [
        "short", "short", "medium", "medium", "long", "long"]
    with pytest.raises(RopebenchError, match="no LongBench v2 length label reaches 2000001"):
        longbench2_label(2_000_001)


def test_a_label_the_file_lacks_is_refused(tmp_path):
    data = build_data(tmp_path / "data", labels=("short", "long"))
    check_length(data, "longbench2_academic_single", 4096)
    check_length(data, "longbench2_academic_single", 131_072)
    with pytest.raises(RopebenchError, match=r"no .medium. items .*\(it has long, short\)"):
        check_length(data, "longbench2_academic_single", 65_536)


def test_ruler_vt_below_its_generator_minimum_is_refused():
    with pytest.raises(RopebenchError, match="ruler_vt cannot build samples of 512 tokens"):
        check_length(Path(), "ruler_vt", 512)
    check_length(Path(), "ruler_vt", 1024)


def test_prompts_are_cut_in_the_middle_to_the_length(tmp_path, tok):
    """The whole rendered prompt (description and question included) keeps both ends."""
    data = build_data(tmp_path / "data", labels=("short", "medium"))
    doc = json.loads((data / "longbench2" / "academic_single.jsonl").read_text().splitlines()[0])
    doc["choices"] = [doc[f"choice_{x}"] for x in "ABCD"]
    built = build("longbench2_academic_single", data, 128, tok, None)
    assert built.bucket == "short" and built.metric == "acc"
    prompt = built.config["doc_to_text"](doc)
    assert prompt.startswith("Please read the following text") and prompt.endswith("Answer:")
    assert len(tok(prompt, add_special_tokens=False)["input_ids"]) <= 130
    inf = json.loads((data / "infinitebench" / "passkey.jsonl").read_text().splitlines()[0])
    built = build("infinitebench_passkey", data, 96, tok, None)
    prompt = built.config["doc_to_text"](inf)
    assert built.bucket == "middle" and "description" not in built.config
    assert prompt.startswith("There is an important info hidden") and prompt.endswith("pass key?")
    long = build("infinitebench_passkey", data, 100_000, tok, None).config["doc_to_text"](inf)
    assert "71234" in long and "71234" not in prompt  # the needle sat in the cut middle


@pytest.mark.parametrize("values, message", [
    ({"tasks": "infinitebench_nosuch", "data": "."}, "does not support"),
    ({"tasks": "niah_single_2"}, "downloads Paul Graham essays .* lmeval_long.online=true"),
    ({"tasks": "ruler_qa_squad"}, "downloads SQuAD"),
    ({"tasks": "longbench2_academic_single"}, "give --set lmeval_long.data=DIR"),
])
def test_unknown_tasks_downloads_and_missing_data_are_refused(values, message):
    with pytest.raises(RopebenchError, match=message):
        LmevalLong().parse_options(values)


def test_ruler_alone_needs_no_data_folder():
    assert LmevalLong().parse_options({"tasks": "niah_single_1,ruler_fwe"})["tasks"]
    assert LmevalLong().parse_options({"tasks": "niah_single_2", "online": True})["online"]


@pytest.mark.parametrize("folder, record, message", [
    ("longbench2", {"context": "x", "question": "q", "answer": "A", "length": "tiny",
                    "choices": ["a", "b", "c", "d"]}, "is not a longbench2 record"),
    ("longbench2", {"context": "x", "question": "q", "answer": "A", "length": "short"},
     "choice_A..D"),
    ("infinitebench", {"context": "x", "input": "q", "answer": "7"}, "answer a non-empty list"),
])
def test_a_folder_in_the_wrong_format_is_refused(tmp_path, folder, record, message):
    data = build_data(tmp_path / "data")
    name = "academic_single" if folder == "longbench2" else "passkey"
    _jsonl(data / folder / f"{name}.jsonl", [record])
    with pytest.raises(RopebenchError, match=message):
        LmevalLong().parse_options({"tasks": TASKS, "data": str(data)})


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "ropebench", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_a_length_no_label_can_give_exits_2_before_weights_load(tmp_path):
    data = build_data(tmp_path / "data")
    done = _cli("eval", "reference", "--tasks", "lmeval_long", "--lengths", "512,32768",
                "--set", f"lmeval_long.data={data}", "--set",
                "lmeval_long.tasks=longbench2_academic_single", "--out", str(tmp_path / "out"),
                cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no 'medium' items" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_eval_runs_longbench2_infinitebench_and_ruler_by_length(tmp_path):
    data = build_data(tmp_path / "data")
    out = tmp_path / "out"
    done = _cli("eval", "reference", "--tasks", "lmeval_long", "--lengths", "256,512",
                "--samples", "2", "--set", f"lmeval_long.data={data}", "--set",
                f"lmeval_long.tasks={TASKS}", "--out", str(out), "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    cells = pd.read_csv(out / "summary.csv")
    cells = cells[cells["task"] == "lmeval_long"]
    got = {(s, int(n)): int(k) for s, n, k in zip(cells["subtask"], cells["length"], cells["n"],
                                                  strict=True)}
    assert got == {(t, n): 2 for t in TASKS.split(",") for n in (256, 512)}
    assert (cells["ci_low"] <= cells["score"]).all() and (cells["score"] <= cells["ci_high"]).all()
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    buckets = {(r["metadata"]["lm_eval_task"], r["length"]): r["metadata"]["bucket"] for r in rows}
    assert buckets == {(t, n): b for n in (256, 512) for t, b in zip(
        TASKS.split(","), ("short", "middle", "generated"), strict=True)}
    for row in rows:
        task = row["metadata"]["lm_eval_task"]
        if task != "niah_single_1":  # cut to the length (decode/re-encode may add a token)
            assert row["input_tokens"] <= row["length"] + 2, row
        if task == "longbench2_academic_single":
            assert row["references"] == ["A"] and row["prediction"] in "ABCD"
        if task == "niah_single_1":  # lm-eval sizes RULER's haystack + 128 answer tokens to L
            assert row["length"] / 4 < row["input_tokens"] < row["length"], row
            assert row["metadata"]["metric"] == str(row["length"])

"""One interval rule: summary.csv, the report's cells table and its HTML carry the same interval
and n for every cell (`stats.cell_interval`), and a group's interval never collapses to a point."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import tiny_llama, tiny_tokenizer

from ropebench.cli.main import main
from ropebench.reports.tables import cell_stats
from ropebench.run.evaluate import summarize
from ropebench.stats import group_interval, wilson


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("intervals")
    model = root / "model"
    tiny_llama(window=128, seed=0).save_pretrained(model)
    tiny_tokenizer().save_pretrained(model)
    plan = {"name": "intervals", "model": str(model), "target_length": 512,
            "methods": ["none", "pi"],
            "evaluate": {"tasks": ["passkey", "ppl", "niah_single_1", "niah_single_2"],
                         "lengths": [384, 512], "samples": 4,
                         "options": {"max_new_tokens": 4, "haystack": "pydoc"}}}
    (root / "plan.yaml").write_text(yaml.safe_dump(plan))
    assert main(["compare", str(root / "plan.yaml"), "--out", str(root / "run"), "--quiet"]) == 0
    assert main(["report", str(root / "run")]) == 0
    return root / "run"


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_summary_csv_and_the_report_carry_the_same_interval_for_every_cell(run):
    manifest = json.loads((run / "manifest.json").read_text())
    cells = {(c["method"], c["task"], int(c["length"]), c["subtask"]): c
             for c in _csv(run / "tables" / "cells.csv")}
    html = (run / "report.html").read_text()
    compared = 0
    for method in manifest["methods"]:
        for stage in method["evals"].values():
            for line in _csv(run / stage["path"] / "summary.csv"):
                cell = cells[(line["method"], line["task"], int(line["length"]),
                              line.get("subtask") or "")]
                assert int(line["n"]) == int(cell["n"]), line
                for ours, theirs in (("score", "score"), ("ci_low", "low"), ("ci_high", "high")):
                    assert float(line[ours]) == pytest.approx(float(cell[theirs]), abs=1e-3), line
                if not math.isnan(float(line["ci_low"])):
                    shown = f"[{float(line['ci_low']):.1f}, {float(line['ci_high']):.1f}]"
                    assert shown in html, (line, shown)
                compared += 1
    # 2 methods x 4 tasks x 2 lengths; the perplexity rows' n counts documents, not rows.
    assert compared == 16
    ppl = [c for c in cells.values() if c["task"] == "ppl"]
    assert ppl and all(int(c["n"]) == 4 and float(c["low"]) < float(c["high"]) for c in ppl)


def test_lm_eval_rows_and_samples_agree_between_summary_and_report():
    def row(task, score, index, **metadata):
        return {"method": "m", "task": task, "length": 1024, "index": index, "score": score,
                "input_tokens": 900, "metadata": metadata}

    rows = [
        row("lmeval_long", 0.5, 0, lm_eval_task="babilong_qa1", metric="acc,none",
            metrics={"acc,none": 0.5, "sample_len": 10}),
        row("lmeval_long", 0.25, 1, lm_eval_task="longbench_qasper", metric="f1,none",
            metrics={"f1,none": 0.25, "f1_stderr,none": 0.2}),  # +-1.96 x 0.2 leaves [0, 1]
        *(row("passkey", float(i % 2), i) for i in range(6)),
    ]
    summary = summarize(rows).fillna({"subtask": ""})
    report = cell_stats(pd.DataFrame(rows))
    merged = summary.merge(report, on=["method", "task", "length", "subtask"])
    assert len(merged) == len(summary) == 3
    for _, cell in merged.iterrows():
        assert cell["n_x"] == cell["n_y"]
        assert cell["ci_low"] == pytest.approx(cell["low"], abs=1e-3)
        assert cell["ci_high"] == pytest.approx(cell["high"], abs=1e-3)
        assert 0 <= cell["ci_low"] <= cell["ci_high"] <= 100  # clamped to a fraction's range
    qasper = merged[merged["subtask"] == "longbench_qasper"].iloc[0]
    assert (qasper["ci_low"], qasper["ci_high"]) == (0.0, pytest.approx(100 * (0.25 + 1.96 * 0.2),
                                                                         abs=1e-2))


def test_a_group_where_every_sample_agrees_still_has_an_interval():
    n, score, low, high = group_interval([[0.0] * 24] * 13)
    assert (n, score, low) == (312, 0.0, 0.0) and high == pytest.approx(wilson(0, 312)[1])
    assert high > 0.01  # not "0.0 [0.0, 0.0]"
    n, score, low, high = group_interval([[1.0, 0.0, 1.0], [0.5, 0.5, 0.5]])  # not pass/fail
    assert n == 6 and low < score < high

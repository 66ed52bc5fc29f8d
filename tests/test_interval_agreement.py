"""One interval rule, end to end: after a real `compare` and `report`, every evaluation stage's
summary.csv carries the same n, score and interval as the report's cells table and its HTML
(hand-made rows of every kind: tests/test_intervals.py)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from helpers import tiny_llama, tiny_tokenizer

from ropebench.cli.main import main


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

"""`mrcr` and the non-literal needles in a plan on the shipped reference model, through the report."""

from __future__ import annotations

import pandas as pd
import pytest

from ropebench.reports import write_report
from ropebench.reports.results import load_run
from ropebench.run.plan import plan_from_dict
from ropebench.run.runner import ComparisonRunner

pytestmark = pytest.mark.slow


def test_a_plan_runs_mrcr_and_nonliteral_needles_on_the_reference_model(tmp_path):
    plan = plan_from_dict({
        "name": "harder-retrieval",
        "model": "reference",
        "target_length": 1024,
        "methods": ["none"],
        "evaluate": {"tasks": ["mrcr", "nolima"], "lengths": [512, 1024], "samples": 2,
                     "options": {"max_new_tokens": 24,
                                 "nolima_2": {"haystack": "pydoc"},
                                 "mrcr": {"answer_words": 8}}},
    })
    run_dir = tmp_path / "run"
    ComparisonRunner(plan, run_dir, progress=False).run()
    rows = load_run(run_dir).rows
    counts = rows.groupby(["task", "length"]).size().to_dict()
    assert counts == {(t, n): 2 for t in ("mrcr", "nolima_1", "nolima_2") for n in (512, 1024)}
    assert rows["score"].between(0, 1).all()
    write_report(run_dir)
    summary = pd.read_csv(run_dir / "tables" / "summary.csv")
    columns = set(summary.columns)
    assert {"mrcr %", "mrcr % low", "mrcr % high", "mrcr % n"} <= columns
    assert any(c.endswith("NoLiMa effective length") for c in columns)
    assert any(c.endswith("effective length") and "NoLiMa" not in c for c in columns)
    html = (run_dir / "report.html").read_text()
    assert "Multi-round coreference" in html and "NIAH, non-literal" in html

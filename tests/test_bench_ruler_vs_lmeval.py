"""bench/ruler_vs_lmeval.py's cells: interleaved repeats, median ratio with its range, a failing
side marks its cell failed and the run goes on (no timing here: the sides are stand-ins)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from _common import ChildFailed  # noqa: E402
from ruler_vs_lmeval import Cell, run_cell, summary  # noqa: E402


def side_result(n: int, run: float) -> dict:
    return {"imports": 1.0, "load": 0.5, "build": 2.0, "run": run, "n": n, "score": 0.5,
            "tokens": 100.0}


def test_sides_alternate_and_the_median_ratio_is_reported():
    calls = []
    # ropebench runs in 1 s per repeat; lm-eval in 8, 2 (a load spike on ropebench's turn), 9 s.
    lmeval_runs = iter([8.0, 2.0, 9.0])

    def run_side(side):
        calls.append(side)
        return side_result(10, 1.0 if side == "ropebench" else next(lmeval_runs))

    cell = run_cell(run_side, "vt", 1024, 3, report=lambda line: None)
    assert calls == ["ropebench", "lm-eval", "lm-eval", "ropebench", "ropebench", "lm-eval"]
    assert cell.ratios == [8.0, 2.0, 9.0] and cell.failed is None
    # (build + run) / n per lm-eval sample times ropebench's rate
    assert cell.ratios_with_build == [10.0, 4.0, 11.0]
    lines = summary([cell])
    assert lines[0].endswith("ratio 8.00 (2.00-9.00, 3 runs); with lm-eval's task building "
                             "10.00 (4.00-11.00, 3 runs)")
    assert lines[-1] == "ratio: 8.00"


def test_a_failing_side_fails_its_cell_and_the_run_goes_on():
    traceback = "Traceback (most recent call last):\n  ...\nZeroDivisionError: division by zero\n"

    def failing(side):
        if side == "lm-eval":
            raise ChildFailed(traceback)
        return side_result(10, 1.0)

    reported = []
    failed = run_cell(failing, "cwe", 4096, 3, report=reported.append)
    assert failed.failed == "lm-eval: ZeroDivisionError: division by zero"
    assert failed.ratios == []
    assert reported[-1].endswith("failed: lm-eval: ZeroDivisionError: division by zero")
    ok = Cell("vt", 1024, ratios=[4.0, 2.0], ratios_with_build=[5.0, 3.0])
    lines = summary([failed, ok])
    assert "cwe" in lines[0] and "failed (lm-eval: ZeroDivisionError" in lines[0]
    assert "over 1 cells (1 failed)" in lines[2]
    assert lines[-1] == "ratio: 3.00"  # the median of the measured cell only


def test_a_prompt_that_cannot_fit_skips_its_cell_and_nothing_measured_is_said():
    cell = run_cell(lambda side: side_result(0, 1.0), "cwe", 512, 2, report=lambda line: None)
    assert cell.skipped and not cell.ratios
    assert summary([cell])[-2:] == ["no cell measured (0 failed)", "ratio: n/a"]

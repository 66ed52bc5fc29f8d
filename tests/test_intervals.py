"""One interval rule (ropebench.stats, docs/intervals.md): summary.csv, the report's cells,
summary.md and the HTML page give every cell the same score, interval and n."""

from __future__ import annotations

import math
from html.parser import HTMLParser

import pandas as pd
import pytest
from test_report import _passes, _ppl_row, _rewrite, _row, make_run

from ropebench.reports import write_report
from ropebench.run.evaluate import summarize
from ropebench.stats import (
    Z95,
    cell_estimate,
    fraction_estimate,
    mean_of_fractions,
    wilson,
)
from ropebench.tasks import get_task

METHODS = ("none", "pi", "longrope2")


# ---------------------------------------------------------------- the rule on numbers

def test_all_fail_and_all_pass_keep_a_width():
    """0/48 and 48/48: Wilson's bounds are z^2 / (n + z^2) from the end, not a point."""
    edge = Z95 ** 2 / (48 + Z95 ** 2)
    none = fraction_estimate([0.0] * 48)
    assert (none.score, none.low, none.n) == (0.0, 0.0, 48)
    assert none.high == pytest.approx(edge)
    every = fraction_estimate([1.0] * 48)
    assert every.low == pytest.approx(1 - edge) and every.high == 1.0


def test_a_mean_over_equal_cells_is_the_pooled_interval():
    pooled = fraction_estimate([1.0] * 30 + [0.0] * 18)
    mean = mean_of_fractions([20 / 24, 10 / 24], [24, 24])
    assert (mean.score, mean.n) == (pytest.approx(pooled.score), 48)
    assert (mean.low, mean.high) == (pytest.approx(pooled.low), pytest.approx(pooled.high))
    # Unequal cells: the effective count T^2 / sum(1/n_t) lies below the total.
    uneven = mean_of_fractions([0.5, 0.5], [10, 1000])
    assert (uneven.low, uneven.high) == pytest.approx(wilson(0.5 * 4 / 0.101, 4 / 0.101))


def test_fractional_scores_and_lm_eval_items_stay_in_range():
    """Fractional per-sample scores: Wilson at the sample count; an lm-eval row counts its items."""
    cell = cell_estimate([0.25, 0.5, 1.0, 0.75], [{}] * 4, unit="fraction")
    assert cell.n == 4 and cell.score == pytest.approx(0.625)
    assert (cell.low, cell.high) == pytest.approx(wilson(2.5, 4))
    row = {"metric": "f1", "metrics": {"f1": 0.05, "sample_len": 40}}
    tiny = cell_estimate([0.05], [row], unit="fraction")
    assert tiny.n == 40 and 0.0 <= tiny.low < 0.05 < tiny.high <= 1.0


def test_perplexity_is_bootstrapped_over_documents_and_stays_above_one():
    nll, tokens = [2.0, 0.1, 3.0, 0.05], [10, 10, 10, 10]
    row = {"document_nll": nll, "document_tokens": tokens}
    cell = cell_estimate([math.exp(sum(nll) / sum(tokens))], [row], unit="perplexity",
                         per_document="pooled_nll")
    again = cell_estimate([cell.score], [row], unit="perplexity", per_document="pooled_nll")
    assert cell == again  # a fixed seed
    assert cell.n == 4 and 1.0 <= cell.low < cell.score < cell.high
    one = cell_estimate([5.0], [{}], unit="perplexity")
    assert math.isnan(one.low) and math.isnan(one.high)  # one number: no interval to give


# ---------------------------------------------------------------- one rule everywhere

def _lm(task: str, score: float, items: int, metric: str = "acc,none") -> dict:
    return _row("short", 0, score, lm_eval_task=task, metric=metric,
                metrics={metric: score, "sample_len": items})


def _long(task: str, length: int, scores: list[float]) -> list[dict]:
    return [_row("lmeval_long", length, s, index=i, lm_eval_task=task, metric="f1")
            for i, s in enumerate(scores)]


def _method_rows(i: int) -> list[dict]:
    docs = [10, 12, 9, 11, 10, 13]
    multiquery = [_row("niah_multiquery", 4096, (k % 5) / 4 if i else 0.0, index=k)
                  for k in range(24)]
    niah = [_row("niah", length, float((k + i) % 3 != 0), index=k, depth=float(50 * (k % 3)))
            for length in (512, 4096) for k in range(9)]
    return (_passes("niah_single_1", 512, 24, 24) + _passes("niah_single_1", 4096, 8 * i, 24)
            + [_row("niah_multiquery", 512, 1.0 if k % 6 else 0.75, index=k) for k in range(24)]
            + multiquery + niah
            + _passes("passkey", 512, 20 - i, 20) + _passes("passkey", 4096, 3 * i, 20)
            + [_ppl_row(512, [(2.0 + 0.1 * k) * d for k, d in enumerate(docs)], docs),
               _ppl_row(4096, [(2.0 + 0.3 * k / (i + 1)) * d for k, d in enumerate(docs)], docs)]
            + [_lm("arc", 0.5 + 0.1 * i, 50), _lm("piqa", 0.6, 40),
               _lm("drop", 0.04 * i, 30, metric="f1,none")]
            + _long("hotpot", 512, [0.0, 0.5, 0.25 * i]) + _long("babi", 1024, [1.0, float(i > 0)]))


class _Tables(HTMLParser):
    """Every table cell's text on the page, by (section heading, table heading, row, column)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str, str, str], str] = {}
        self.h2 = self.h3 = ""
        self.heading: str | None = None
        self.row: list[str] | None = None
        self.header: list[str] = []
        self.text: str | None = None

    def handle_starttag(self, tag, attrs):
        if tag in ("h2", "h3"):
            self.heading, self.text = tag, ""
        elif tag == "table":
            self.header = []
        elif tag == "tr":
            self.row = []
        elif tag in ("td", "th"):
            self.text = ""
        elif tag == "br" and self.text is not None:
            self.text += " "

    def handle_endtag(self, tag):
        if tag in ("h2", "h3") and self.heading == tag:
            setattr(self, tag, self.text.strip())
            if tag == "h2":
                self.h3 = ""
            self.heading, self.text = None, None
        elif tag in ("td", "th") and self.row is not None:
            self.row.append(" ".join(self.text.replace(" ≈", "").split()))
            self.text = None
        elif tag == "tr" and self.row is not None:
            if not self.header:
                self.header = self.row
            else:
                for column, text in zip(self.header[1:], self.row[1:], strict=True):
                    self.cells[(self.h2, self.h3, self.row[0], column)] = text
            self.row = None

    def handle_data(self, data):
        if self.text is not None:
            self.text += data


def _shown(score: float, low: float, high: float, n: int, digits: int) -> str:
    interval = "" if math.isnan(low) else f" [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{score:.{digits}f}{interval} n={int(n)}"


def _page_key(cell: pd.Series) -> tuple[str, str, str, str]:
    """Where the page shows a summary.csv cell: its section, table heading, row and column."""
    task = get_task(cell["task"])
    length = str(int(cell["length"]))
    if task.report == "group":
        return (task.group_title, cell["method"], cell["task"], length)
    if task.report == "subtasks":
        column = cell["subtask"] if task.per_length is False else f"{cell['subtask']} @ {length}"
        return (task.display_title, "", cell["method"], column)
    return (task.display_title, "", cell["method"], length)


def _markdown_summary(text: str) -> pd.DataFrame:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split(" | ")]
    body = [[c.strip().removesuffix(" ≈") for c in line.strip("|").split(" | ")]
            for line in lines[1:len(METHODS) + 1]]
    return pd.DataFrame(body, columns=header).set_index("method")


def _expected_md(csv: pd.DataFrame, method: str) -> dict[str, tuple]:
    """The summary.md columns built from summary.csv's cells by the same rule (the summary
    shows every score with one decimal)."""
    own = csv[csv["method"] == method]

    def mean(cells: pd.DataFrame) -> tuple:
        found = mean_of_fractions((cells["score"] / 100).tolist(), cells["n"].tolist()).scaled(100)
        return (found.score, found.low, found.high, found.n)

    def pooled(cells: pd.DataFrame) -> tuple:
        found = fraction_estimate((cells["score"] / 100).tolist(), cells["n"].tolist()).scaled(100)
        return (found.score, found.low, found.high, found.n)

    ruler = own[own["task"].isin(["niah_single_1", "niah_multiquery"])]
    out = {f"RULER {length}": mean(ruler[ruler["length"] == length]) for length in (512, 4096)}
    for length in (512, 4096):
        ppl = own[(own["task"] == "ppl") & (own["length"] == length)].iloc[0]
        out[f"PPL {length}"] = (ppl["score"], ppl["ci_low"], ppl["ci_high"], ppl["n"])
    out["passkey %"] = pooled(own[own["task"] == "passkey"])
    out["NIAH pass %"] = pooled(own[own["task"] == "niah"])  # every niah score is 0 or 1
    out["short %"] = mean(own[own["task"] == "short"])
    out["lmeval_long %"] = mean(own[own["task"] == "lmeval_long"])
    return out


def test_summary_csv_and_every_report_cell_agree(tmp_path):
    run = make_run(tmp_path / "run")
    rows = {m: _method_rows(i) for i, m in enumerate(METHODS)}
    _rewrite(run, rows)
    csv = summarize([{**r, "method": m} for m in METHODS for r in rows[m]])
    write_report(run)
    cells = pd.read_csv(run / "tables" / "cells.csv").fillna({"subtask": ""})
    page = _Tables()
    page.feed((run / "report.html").read_text())
    assert len(csv) == len(cells) == 3 * 15
    for _, cell in csv.fillna({"subtask": ""}).iterrows():
        low, high = cell["ci_low"], cell["ci_high"]
        assert low <= cell["score"] <= high and low < high, cell.to_dict()
        assert (0 <= low and high <= 100) if get_task(cell["task"]).unit == "fraction" else low >= 1
        same = cells[(cells["method"] == cell["method"]) & (cells["task"] == cell["task"])
                     & (cells["length"] == cell["length"]) & (cells["subtask"] == cell["subtask"])]
        assert len(same) == 1, cell.to_dict()
        mine = same.iloc[0]
        assert mine["n"] == cell["n"]
        assert [round(mine[k], 4) for k in ("score", "low", "high")] == pytest.approx(
            [cell["score"], low, high], abs=1e-9)
        digits = 1 if get_task(cell["task"]).unit == "fraction" else 2
        shown = page.cells[_page_key(cell)]
        assert shown.startswith(_shown(cell["score"], low, high, cell["n"], digits)), (shown, cell)

    md = _markdown_summary((run / "summary.md").read_text())
    for method in METHODS:
        for column, (score, low, high, n) in _expected_md(csv, method).items():
            assert md.loc[method, column] == _shown(score, low, high, n, 1), (method, column)
            assert page.cells[("Summary", "", method, column)] == md.loc[method, column]

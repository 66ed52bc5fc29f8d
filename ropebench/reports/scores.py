"""The summary's score columns: what a score column measures, the summary being built (one
column and its interval companions at a time), tie marks and retention percentages."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ropebench.reports.cells import cell_interval
from ropebench.reports.results import RunResults
from ropebench.stats import overlap, ratio_interval
from ropebench.tasks import Task


@dataclass
class Score:
    """A summary column holding a score, what it measures and which way is better."""

    column: str
    what: str
    higher_is_better: bool


@dataclass
class Summary:
    """The summary table while section kinds add their columns: one row per method."""

    results: RunResults
    frame: pd.DataFrame
    threshold: float | None = None  # the effective-length bar; the first group sets it if None
    groups: int = 0  # group sections seen so far: the first one's columns carry no prefix
    scores: list[Score] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        return list(self.frame.index)

    def put(self, column: str, values: pd.DataFrame) -> None:
        """`values` (indexed by method: score, low, high, n) as `column` and its companions."""
        values = values.reindex(self.frame.index)
        for suffix, source in (("", "score"), (" low", "low"), (" high", "high"), (" n", "n")):
            self.frame[f"{column}{suffix}"] = values[source]


def pooled(task: Task, rows: pd.DataFrame, column: str = "score") -> pd.DataFrame:
    """Per method: all its rows of `task` as one cell (score, low, high, n)."""
    out = {}
    for method, group in rows.groupby("method", sort=False):
        cell = cell_interval(task, group.assign(score=group[column]))
        out[method] = {"n": cell.n, "score": cell.score, "low": cell.low, "high": cell.high}
    return pd.DataFrame.from_dict(out, orient="index", columns=["score", "low", "high", "n"])


def _span(summary: pd.DataFrame, method: str, column: str) -> tuple[float, float]:
    return (float(summary.loc[method, f"{column} low"]), float(summary.loc[method, f"{column} high"]))


def mark_ties(summary: pd.DataFrame, score: Score) -> None:
    """`C best` for the best method of the column, `C tied` for those whose interval overlaps it."""
    column = score.column
    values = summary[column].astype(float)
    best, tied = pd.Series(False, index=summary.index), pd.Series(False, index=summary.index)
    if values.notna().any():
        top = values.idxmax() if score.higher_is_better else values.idxmin()
        best[top] = True
        for method in summary.index:
            if method != top and not math.isnan(values[method]):
                tied[method] = overlap(_span(summary, top, column), _span(summary, method, column))
    summary[f"{column} best"], summary[f"{column} tied"] = best, tied


def retained_percent(summary: pd.DataFrame, column: str, name: str, base: str | None,
                     higher_is_better: bool = True) -> None:
    """`name` (+ low, high, n): each method's `column` as a % of the baseline's, with the ratio's
    95% interval; for a lower-is-better score the baseline's over the method's, so 100% is as
    good as the baseline either way. The baseline itself is 100 without an interval."""
    if base not in summary.index or pd.isna(summary.loc[base, column]):
        return
    reference = tuple(float(summary.loc[base, f"{column}{s}"]) for s in ("", " low", " high"))
    values = {}
    for method in summary.index:
        own = tuple(float(summary.loc[method, f"{column}{s}"]) for s in ("", " low", " high"))
        if method == base:
            ratio = (1.0, math.nan, math.nan)
        else:
            ratio = ratio_interval(*((own, reference) if higher_is_better else (reference, own)))
        values[method] = [100 * x for x in ratio]
    for i, suffix in enumerate(("", " low", " high")):
        summary[f"{name}{suffix}"] = [values[m][i] for m in summary.index]
    summary[f"{name} n"] = summary[f"{column} n"]

"""The summary table: one row per method, every section's score columns (each with its interval,
n and tie marks, added by the section's kind), then the costs of search and training."""

from __future__ import annotations

import pandas as pd

from ropebench.reports.cells import COMPANIONS
from ropebench.reports.results import RunResults
from ropebench.reports.scores import Score, Summary, mark_ties
from ropebench.reports.sections import kind_of, sections


def build_summary(results: RunResults, threshold: float | None = None) -> Summary:
    """The summary, its score columns in order (the first ranks the methods) and the
    effective-length threshold it used."""
    frame = pd.DataFrame(index=pd.Index(results.labels, name="method"))
    frame["kind"] = [m.method for m in results.methods]
    summary = Summary(results, frame, threshold)
    rows = results.rows
    for section in sections(rows):
        found = kind_of(section).summarize(summary, section, rows[rows["task"].isin(section.tasks)])
        summary.scores += found
    for score in summary.scores:
        mark_ties(summary.frame, score)
    _costs(summary.frame, results)
    summary.frame = _tidy(summary.frame)
    summary.scores = [s for s in summary.scores if s.column in summary.frame]
    return summary


def _costs(frame: pd.DataFrame, results: RunResults) -> None:
    frame["search s"] = [m.search_seconds for m in results.methods]
    frame["search evals"] = [m.search_evaluations for m in results.methods]
    frame["train s"] = [m.train_seconds for m in results.methods]
    frame["train tokens"] = [m.train_tokens for m in results.methods]


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Without the columns nothing filled (unless their score is there), counts as integers."""
    empty = [c for c in frame.columns if frame[c].isna().all()
             and not any(c.endswith(s) and frame[c[: -len(s)]].notna().any() for s in COMPANIONS
                         if c[: -len(s)] in frame.columns)]
    frame = frame.drop(columns=empty)
    counts = [c for c in frame.columns if c.endswith((" n", "effective length"))
              or c in ("search evals", "train tokens")]
    return frame.astype({c: "Int64" for c in counts})  # counts, shown without decimals


def summary_scores(results: RunResults, threshold: float | None = None) -> tuple[pd.DataFrame, list[Score]]:
    """The summary table and its score columns, in order (the first one ranks the methods)."""
    summary = build_summary(results, threshold)
    return summary.frame, summary.scores


def summary_table(results: RunResults, threshold: float | None = None) -> pd.DataFrame:
    """One row per method: every section's score with its interval, n and tie marks, then costs."""
    return build_summary(results, threshold).frame

"""Result tables from tidy rows (pandas only, no I/O): one function per table of the report.

Generative scores in rows are 0..1 and shown x100; `ppl` rows hold a perplexity.
"""

from __future__ import annotations

import math

import pandas as pd

from ropebench.reports.results import RunResults
from ropebench.tasks import GROUPS
from ropebench.tasks.ruler.aggregate import (
    default_threshold,
    effective_length,
    wavg_dec,
    wavg_inc,
)

RULER_TASKS = GROUPS["ruler"]
SHORT_TASK = "short"  # one row per lm-eval task, named in metadata["lm_eval_task"]


def method_order(results: RunResults) -> list[str]:
    return [m.label for m in results.methods]


def ruler_rows(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["task"].isin(RULER_TASKS)]


def short_rows(rows: pd.DataFrame) -> pd.DataFrame:
    sub = rows[rows["task"] == SHORT_TASK]
    return sub.assign(subtask=sub["metadata"].map(lambda meta: meta.get("lm_eval_task", SHORT_TASK)))


def ruler_task_table(rows: pd.DataFrame, method: str) -> pd.DataFrame:
    """task x length, RULER task score (mean of samples x100) for one method."""
    sub = ruler_rows(rows)
    sub = sub[sub["method"] == method]
    table = sub.pivot_table(index="task", columns="length", values="score", aggfunc="mean") * 100
    order = [t for t in RULER_TASKS if t in table.index]
    return table.loc[order]


def ruler_by_length(rows: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """method x length: the plain mean of the RULER task scores (RULER's per-length score)."""
    per_task = ruler_rows(rows).groupby(["method", "length", "task"])["score"].mean() * 100
    table = per_task.groupby(["method", "length"]).mean().unstack("length")
    return table.reindex([m for m in methods if m in table.index])


def ruler_coverage(rows: pd.DataFrame, method: str) -> str:
    """How many of the group's tasks each RULER mean covers (the fewest over lengths): "13/13",
    or "11/13 partial" when a task did not fit or its data was missing."""
    sub = ruler_rows(rows)
    sub = sub[sub["method"] == method]
    if sub.empty:
        return ""
    fewest = int(sub.groupby("length")["task"].nunique().min())
    mark = "" if fewest == len(RULER_TASKS) else " partial"
    return f"{fewest}/{len(RULER_TASKS)}{mark}"


def ruler_threshold(ruler: pd.DataFrame, baseline: str | None, window: int) -> float:
    """RULER's 85.6, or 0.9 x the original model's score at its window when that is lower."""
    if baseline is None or baseline not in ruler.index:
        return default_threshold({})
    return default_threshold(_per_length(ruler.loc[baseline]), window)


def _per_length(scores: pd.Series) -> dict[int, float]:
    return {int(length): float(score) for length, score in scores.dropna().items()}


def metric_by_length(rows: pd.DataFrame, task: str, methods: list[str], scale: float = 1.0) -> pd.DataFrame:
    """method x length mean score of one task (`scale=100` for accuracies)."""
    sub = rows[rows["task"] == task]
    table = sub.pivot_table(index="method", columns="length", values="score", aggfunc="mean") * scale
    return table.reindex([m for m in methods if m in table.index])


def niah_grid(rows: pd.DataFrame, method: str) -> pd.DataFrame:
    """depth x length mean needle score (0..1) for one method."""
    sub = rows[(rows["task"] == "niah") & (rows["method"] == method)]
    if sub.empty:
        return pd.DataFrame()
    depth = sub["metadata"].map(lambda meta: float(meta.get("depth", math.nan)))
    sub = sub.assign(depth=depth)
    return sub.pivot_table(index="depth", columns="length", values="score", aggfunc="mean")


def short_table(rows: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """method x lm-eval task accuracy (x100)."""
    sub = short_rows(rows)
    if sub.empty:
        return pd.DataFrame()
    table = sub.pivot_table(index="method", columns="subtask", values="score", aggfunc="mean") * 100
    return table.reindex([m for m in methods if m in table.index])


def summary_table(results: RunResults, threshold: float | None = None) -> pd.DataFrame:
    """One row per method: RULER per length, effective length, NIAH, PPL, passkey, short, cost."""
    rows, methods = results.rows, method_order(results)
    window = int(results.spec.get("window", 0))
    summary = pd.DataFrame(index=pd.Index(methods, name="method"))
    summary["kind"] = [m.method for m in results.methods]

    ruler = ruler_by_length(rows, methods)
    for length in ruler.columns:
        summary[f"RULER {length}"] = ruler[length]
    if not ruler.empty:
        if threshold is None:
            threshold = ruler_threshold(ruler, results.baseline, window)
        summary["effective length"] = [
            effective_length(_per_length(ruler.loc[m]), threshold) if m in ruler.index else None
            for m in methods
        ]
        summary["wAvg(inc)"] = [wavg_inc(_per_length(ruler.loc[m])) if m in ruler.index else None
                                for m in methods]
        summary["wAvg(dec)"] = [wavg_dec(_per_length(ruler.loc[m])) if m in ruler.index else None
                                for m in methods]
        summary["RULER tasks"] = [ruler_coverage(rows, m) for m in methods]

    niah = rows[rows["task"] == "niah"]
    if not niah.empty:
        summary["NIAH pass %"] = (niah["score"] >= 1.0).groupby(niah["method"]).mean() * 100

    ppl = metric_by_length(rows, "ppl", methods)
    for length in ppl.columns:
        summary[f"PPL {length}"] = ppl[length]

    passkey = rows[rows["task"] == "passkey"]
    if not passkey.empty:
        summary["passkey %"] = passkey.groupby("method")["score"].mean() * 100

    short = short_table(rows, methods)
    if not short.empty:
        summary["short %"] = short.mean(axis=1)
        base = results.baseline
        if base in short.index:
            summary["short retained %"] = summary["short %"] / summary.loc[base, "short %"] * 100

    summary["search s"] = [m.search_seconds for m in results.methods]
    summary["search evals"] = [m.search_evaluations for m in results.methods]
    summary["train s"] = [m.train_seconds for m in results.methods]
    summary["train tokens"] = [m.train_tokens for m in results.methods]
    summary = summary.dropna(axis=1, how="all")
    counts = [c for c in ("effective length", "search evals", "train tokens") if c in summary]
    return summary.astype({c: "Int64" for c in counts})  # counts, shown without decimals

"""A group of tasks (RULER) read as one score per length: the plain mean of its task scores, the
tasks each mean covers, and RULER's threshold and length aggregates over those means."""

from __future__ import annotations

import pandas as pd

from ropebench.reports.cells import raw_cell, task_of
from ropebench.stats import mean_of_fractions
from ropebench.tasks import GROUPS
from ropebench.tasks.ruler.aggregate import default_threshold


def group_stats(rows: pd.DataFrame, members: list[str]) -> pd.DataFrame:
    """Per (method, length): the plain mean of the member tasks' scores (x100) with Wilson's
    interval at the effective count of its task cells (`stats.mean_of_fractions`), n (samples),
    mean prompt tokens and tasks covered."""
    sub = rows[rows["task"].isin(members)]
    out = []
    for (method, length), cell in sub.groupby(["method", "length"], sort=True):
        tasks = [raw_cell(task_of(name), group) for name, group in cell.groupby("task")]
        mean = mean_of_fractions([t.score for t in tasks], [t.n for t in tasks]).scaled(100)
        tokens = pd.to_numeric(cell["input_tokens"], errors="coerce").mean()
        out.append([method, int(length), mean.n, mean.score, mean.low, mean.high, float(tokens),
                    len(tasks)])
    return pd.DataFrame(out, columns=["method", "length", "n", "score", "low", "high", "tokens",
                                      "tasks"])


def group_by_length(rows: pd.DataFrame, methods: list[str], group: str) -> pd.DataFrame:
    """method x length: the plain mean of the group's task scores x100 (RULER's per-length score)."""
    sub = rows[rows["task"].isin(GROUPS.get(group, ()))]
    per_task = sub.groupby(["method", "length", "task"])["score"].mean() * 100
    table = per_task.groupby(["method", "length"]).mean().unstack("length")
    return table.reindex([m for m in methods if m in table.index])


def group_coverage(rows: pd.DataFrame, method: str, group: str) -> str:
    """How many of the group's tasks each mean covers (the fewest over lengths): "13/13", or
    "11/13 partial" when a task did not fit or its data was missing."""
    members = GROUPS.get(group, ())
    sub = rows[rows["task"].isin(members) & (rows["method"] == method)]
    if sub.empty:
        return ""
    fewest = int(sub.groupby("length")["task"].nunique().min())
    return f"{fewest}/{len(members)}{'' if fewest == len(members) else ' partial'}"


def group_threshold(table: pd.DataFrame, baseline: str | None, window: int) -> float:
    """RULER's 85.6, or 0.9 x the original model's score at its window when that is lower."""
    if baseline is None or baseline not in table.index:
        return default_threshold({})
    return default_threshold(per_length(table.loc[baseline]), window)


def per_length(scores: pd.Series) -> dict[int, float]:
    return {int(length): float(score) for length, score in scores.dropna().items()}

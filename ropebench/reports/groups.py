"""A group of tasks (RULER) read as one score per length: the plain mean of its task scores, the
tasks each mean covers, and RULER's threshold and length aggregates over those means."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ropebench.stats import RESAMPLES
from ropebench.tasks import GROUPS
from ropebench.tasks.ruler.aggregate import default_threshold


def group_stats(rows: pd.DataFrame, members: list[str]) -> pd.DataFrame:
    """Per (method, length): the plain mean of the member tasks' scores (x100) with a bootstrap
    interval that resamples each task's samples within the task, n (samples) and tasks covered."""
    sub = rows[rows["task"].isin(members)]
    out = []
    for (method, length), cell in sub.groupby(["method", "length"], sort=True):
        per_task = [g["score"].astype(float).to_numpy() for _, g in cell.groupby("task")]
        score = 100 * float(np.mean([a.mean() for a in per_task]))
        rng = np.random.default_rng(0)
        means = np.zeros(RESAMPLES)
        for values in per_task:
            means += values[rng.integers(0, values.size, size=(RESAMPLES, values.size))].mean(axis=1)
        low, high = np.percentile(100 * means / len(per_task), [2.5, 97.5])
        tokens = pd.to_numeric(cell["input_tokens"], errors="coerce").mean()
        out.append([method, int(length), len(cell), score, float(low), float(high), float(tokens),
                    len(per_task)])
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

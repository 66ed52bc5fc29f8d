"""One score per cell of rows (method x task x length x sub-task) with its 95% interval, and the
wide tables that set each score beside its interval, n and prompt tokens.

Nothing here names a task: what a row's task is comes from `ropebench.tasks.get_task` (its
`unit`, `per_document`), and a task that is not registered is read as a by-length fraction task.
Fraction scores in rows are 0..1 and shown x100; perplexities are shown as they are. Intervals
follow the one rule of `ropebench.stats` (docs/intervals.md), as summary.csv's do.

Wide tables keep a score's companions in columns beside it: beside a column `C` sit `C low`,
`C high`, `C n` and, in per-task tables, `C tokens` (mean prompt tokens); in the summary `C best` /
`C tied` mark the best method and those whose interval overlaps the best one's.
"""

from __future__ import annotations

import pandas as pd

from ropebench.errors import RopebenchError
from ropebench.stats import Estimate, cell_estimate
from ropebench.tasks import Task, get_task
from ropebench.tasks.registry import TASKS

COMPANIONS = (" low", " high", " n", " tokens", " best", " tied")
SUBTASK_KEY = "lm_eval_task"  # a subtasks task's rows name their sub-task in this metadata key
STAT_COLUMNS = ["method", "task", "length", "subtask", "n", "score", "low", "high", "tokens"]


def task_of(name: str) -> Task:
    """The registered task, or a generic by-length fraction task for a name nobody registered."""
    try:
        return get_task(name)
    except RopebenchError:
        generic = Task()
        generic.name = name
        return generic


def scale_of(task: Task) -> float:
    return 100.0 if task.unit == "fraction" else 1.0


def task_order(names: list[str]) -> list[str]:
    """Task names in registry order, unregistered ones after them in the order given."""
    known = {name: i for i, name in enumerate(TASKS.names())}
    return sorted(names, key=lambda n: (known.get(n, len(known)), names.index(n)))


def subtask_of(meta) -> str:
    return str((meta or {}).get(SUBTASK_KEY, ""))


def raw_cell(task: Task, group: pd.DataFrame) -> Estimate:
    """One cell's rows as score, 95% interval and n on the rows' scale (`stats.cell_estimate`)."""
    return cell_estimate(group["score"].astype(float).tolist(), list(group["metadata"]),
                         unit=task.unit, per_document=task.per_document)


def cell_interval(task: Task, group: pd.DataFrame) -> Estimate:
    """One cell's rows as score, 95% interval and n on the display scale."""
    return raw_cell(task, group).scaled(scale_of(task))


def cell_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (method, task, length, subtask): n, score, its 95% interval and mean prompt tokens."""
    if rows.empty:
        return pd.DataFrame(columns=STAT_COLUMNS)
    rows = rows.assign(subtask=rows["metadata"].map(subtask_of))
    out = []
    for (method, task, length, subtask), group in rows.groupby(
            ["method", "task", "length", "subtask"], sort=False):
        cell = cell_interval(task_of(task), group)
        tokens = pd.to_numeric(group["input_tokens"], errors="coerce").mean()
        out.append([method, task, int(length), subtask, cell.n, cell.score, cell.low, cell.high,
                    float(tokens)])
    return pd.DataFrame(out, columns=STAT_COLUMNS)


def wide(stats: pd.DataFrame, index: str, columns: str, order: list | None = None,
         *, tokens: bool = True) -> pd.DataFrame:
    """A long stats frame as `index` x `columns` with the companion columns beside each value."""
    if stats.empty:
        return pd.DataFrame()
    keys = list(dict.fromkeys(sorted(stats[columns]) if columns != "subtask" else stats[columns]))
    parts = {"": "score", " low": "low", " high": "high", " n": "n"}
    if tokens:
        parts[" tokens"] = "tokens"
    frame = pd.DataFrame(index=pd.Index(list(dict.fromkeys(stats[index])), name=index))
    for key in keys:
        one = stats[stats[columns] == key].set_index(index)
        for suffix, column in parts.items():
            frame[f"{key}{suffix}"] = one[column]
    if order is not None:
        frame = frame.reindex([i for i in order if i in frame.index])
    return frame

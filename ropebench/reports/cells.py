"""One score per cell of rows (method x task x length x sub-task) with its 95% interval, and the
wide tables that set each score beside its interval, n and prompt tokens.

Nothing here names a task: what a row's task is comes from `ropebench.tasks.get_task` (its
`unit`, `per_document`), and a task that is not registered is read as a by-length fraction task.
Fraction scores in rows are 0..1 and shown x100; perplexities are shown as they are.

Wide tables keep a score's companions in columns beside it: beside a column `C` sit `C low`,
`C high`, `C n` and, in per-task tables, `C tokens` (mean prompt tokens); in the summary `C best` /
`C tied` mark the best method and those whose interval overlaps the best one's.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ropebench.errors import RopebenchError
from ropebench.stats import (
    RESAMPLES,
    Z95,
    bootstrap_mean,
    interval,
    wilson,
)
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


def _subtask(meta) -> str:
    return str((meta or {}).get(SUBTASK_KEY, ""))


def _pooled_nll_interval(nll: np.ndarray, tokens: np.ndarray) -> tuple[float, float]:
    """Bootstrap over documents of exp(summed NLL / summed tokens), fixed seed."""
    if nll.size < 2:
        value = math.exp(nll.sum() / tokens.sum())
        return (value, value)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, nll.size, size=(RESAMPLES, nll.size))
    values = np.exp(nll[picks].sum(axis=1) / tokens[picks].sum(axis=1))
    low, high = np.percentile(values, [2.5, 97.5])
    return (float(low), float(high))


def _stderr(meta: dict) -> float | None:
    """lm-eval's standard error of the row's headline metric (`acc,none` -> `acc_stderr,none`)."""
    metric, metrics = str(meta.get("metric", "")), meta.get("metrics") or {}
    name, _, variant = metric.partition(",")
    value = metrics.get(f"{name}_stderr,{variant}" if variant else f"{name}_stderr")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


# lm-eval metrics that score each item 0 or 1: a row's value is then a pass rate over its items.
BINARY_METRICS = ("acc", "acc_norm", "exact_match")


def _binary_items(meta: dict) -> int | None:
    """Items behind an lm-eval row whose metric passes or fails each item, else None."""
    metrics = meta.get("metrics") or {}
    items = metrics.get("sample_len")
    if str(meta.get("metric", "")).partition(",")[0] in BINARY_METRICS and isinstance(items, int):
        return items if items > 0 else None
    return None


def cell_interval(task: Task, group: pd.DataFrame) -> tuple[int, float, float, float]:
    """(n, score, low, high) of one cell's rows on the display scale. Per-document values in a
    measured row's metadata are bootstrapped over documents; lm-eval rows of a pass-or-fail
    metric are pooled over their items (Wilson), other single lm-eval rows use lm-eval's standard
    error; other rows are samples (Wilson for pass rates, the bootstrap otherwise)."""
    scale = scale_of(task)
    scores = group["score"].astype(float).tolist()
    score = scale * sum(scores) / len(scores)
    metas = [m or {} for m in group["metadata"]]
    if task.per_document == "pooled_nll" and all("document_nll" in m for m in metas):
        nll = np.array([v for m in metas for v in m["document_nll"]], dtype=float)
        tokens = np.array([v for m in metas for v in m["document_tokens"]], dtype=float)
        low, high = _pooled_nll_interval(nll, tokens)
        return (len(nll), score, scale * low, scale * high)
    if task.per_document and all("document_ppl" in m for m in metas):
        values = [v for m in metas for v in m["document_ppl"]]
        low, high = bootstrap_mean(values)
        return (len(values), score, scale * low, scale * high)
    items = [_binary_items(m) for m in metas]
    if all(items):
        total = sum(items)
        passed = sum(value * n for value, n in zip(scores, items, strict=True))
        low, high = wilson(passed, total)
        return (total, scale * passed / total, scale * low, scale * high)
    if len(scores) == 1 and _stderr(metas[0]) is not None:
        half = Z95 * _stderr(metas[0])
        low, high = max(0.0, scores[0] - half), scores[0] + half
        if task.unit == "fraction":
            high = min(1.0, high)
        return (1, score, scale * low, scale * high)
    if len(scores) == 1 and task.unit != "fraction" or len(scores) == 1 and scores[0] not in (0, 1):
        return (1, score, math.nan, math.nan)  # one number: no interval to give
    low, high = interval(scores)
    return (len(scores), score, scale * low, scale * high)


def cell_stats(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (method, task, length, subtask): n, score, its 95% interval and mean prompt tokens."""
    if rows.empty:
        return pd.DataFrame(columns=STAT_COLUMNS)
    rows = rows.assign(subtask=rows["metadata"].map(_subtask))
    out = []
    for (method, task, length, subtask), group in rows.groupby(
            ["method", "task", "length", "subtask"], sort=False):
        n, score, low, high = cell_interval(task_of(task), group)
        tokens = pd.to_numeric(group["input_tokens"], errors="coerce").mean()
        out.append([method, task, int(length), subtask, n, score, low, high, float(tokens)])
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

"""Result tables from tidy rows (pandas only, no I/O): one function per table of the report.

Nothing here names a task: what a row's task is comes from `ropebench.tasks.get_task` (its
`unit`, `report`, `group`, `title`), and a task that is not registered is shown as a by-length
fraction task. Fraction scores in rows are 0..1 and shown x100; perplexities are shown as they are.

Every score comes with a 95% interval and its sample count. Wide tables keep them in companion
columns: beside a column `C` sit `C low`, `C high`, `C n` and, in per-task tables, `C tokens` (mean
prompt tokens); in the summary `C best` / `C tied` mark the best method and those whose interval
overlaps the best one's (a difference the intervals do not support).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ropebench.errors import RopebenchError
from ropebench.reports.results import RunResults
from ropebench.stats import cell_interval as stats_cell_interval
from ropebench.stats import group_interval, overlap, ratio_interval
from ropebench.tasks import GROUPS, Task, get_task
from ropebench.tasks.registry import TASKS
from ropebench.tasks.ruler.aggregate import (
    default_threshold,
    effective_length,
    relative_effective_length,
    wavg_dec,
    wavg_inc,
)

COMPANIONS = (" low", " high", " n", " tokens", " best", " tied")
SUBTASK_KEY = "lm_eval_task"  # a subtasks task's rows name their sub-task in this metadata key
STAT_COLUMNS = ["method", "task", "length", "subtask", "n", "score", "low", "high", "tokens"]


# ---------------------------------------------------------------- what the rows' tasks declare

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


@dataclass
class Section:
    """One part of the report: a group of tasks (RULER), or one task shown the way it declares."""

    kind: str  # "group" | "by_length" | "depth_grid" | "subtasks"
    key: str  # the group's or the task's name
    title: str
    abbrev: str
    unit: str
    tasks: list[str] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.key.lower()) or "section"

    @property
    def higher_is_better(self) -> bool:
        return self.unit == "fraction"


def _task_order(names: list[str]) -> list[str]:
    known = {name: i for i, name in enumerate(TASKS.names())}
    return sorted(names, key=lambda n: (known.get(n, len(known)), names.index(n)))


def sections(rows: pd.DataFrame) -> list[Section]:
    """The report's task sections: groups first, then the tasks in registry order."""
    found: list[Section] = []
    by_key: dict[str, Section] = {}
    for name in _task_order(list(dict.fromkeys(rows["task"]))):
        task = task_of(name)
        if task.report == "group" and task.group:
            section = by_key.get(task.group)
            if section is None:
                section = Section("group", task.group, task.group_title or task.group,
                                  task.group_title or task.group, task.unit)
                by_key[task.group] = section
                found.append(section)
            section.tasks.append(name)
            continue
        kind = task.report if task.report in ("depth_grid", "subtasks") else "by_length"
        found.append(Section(kind, name, task.display_title, task.short_name, task.unit, [name]))
    for section in found:
        if section.kind == "group":
            members = GROUPS.get(section.key, ())
            section.tasks.sort(key=lambda n: members.index(n) if n in members else len(members))
    # Groups (RULER) first: their per-length mean is what a long-context comparison ranks by.
    return sorted(found, key=lambda section: section.kind != "group")


def method_order(results: RunResults) -> list[str]:
    return [m.label for m in results.methods]


def _subtask(meta) -> str:
    return str((meta or {}).get(SUBTASK_KEY, ""))


# ---------------------------------------------------------------- intervals per cell

def cell_interval(task: Task, group: pd.DataFrame) -> tuple[int, float, float, float]:
    """(n, score, low, high) of one cell's rows on the display scale, by the one rule
    `stats.cell_interval` (summary.csv uses it too)."""
    scale = scale_of(task)
    n, score, low, high = stats_cell_interval(
        group["score"].astype(float).tolist(), list(group["metadata"]),
        per_document=task.per_document, fraction=task.unit == "fraction")
    return (n, scale * score, scale * low, scale * high)


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


def group_stats(rows: pd.DataFrame, members: list[str]) -> pd.DataFrame:
    """Per (method, length): the plain mean of the member tasks' scores (x100) with its interval
    (`stats.group_interval`), n (samples) and tasks covered."""
    sub = rows[rows["task"].isin(members)]
    out = []
    for (method, length), cell in sub.groupby(["method", "length"], sort=True):
        per_task = [g["score"].astype(float).tolist() for _, g in cell.groupby("task")]
        n, score, low, high = group_interval(per_task)
        tokens = pd.to_numeric(cell["input_tokens"], errors="coerce").mean()
        out.append([method, int(length), n, 100 * score, 100 * low, 100 * high, float(tokens),
                    len(per_task)])
    return pd.DataFrame(out, columns=["method", "length", "n", "score", "low", "high", "tokens",
                                      "tasks"])


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


# ---------------------------------------------------------------- plain score tables

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
    return default_threshold(_per_length(table.loc[baseline]), window)


def _per_length(scores: pd.Series) -> dict[int, float]:
    return {int(length): float(score) for length, score in scores.dropna().items()}


def depth_grid(rows: pd.DataFrame, task: str, method: str) -> pd.DataFrame:
    """depth x length mean score (0..1) of a depth-grid task for one method."""
    sub = rows[(rows["task"] == task) & (rows["method"] == method)]
    if sub.empty:
        return pd.DataFrame()
    sub = sub.assign(depth=sub["metadata"].map(lambda meta: float((meta or {}).get("depth", math.nan))))
    return sub.pivot_table(index="depth", columns="length", values="score", aggfunc="mean")


# ---------------------------------------------------------------- tables with intervals

def by_length_table(stats: pd.DataFrame, task: str, methods: list[str]) -> pd.DataFrame:
    """method x length of one task, with interval, n and prompt tokens per cell."""
    return wide(stats[stats["task"] == task], "method", "length", methods)


def group_mean_table(rows: pd.DataFrame, section: Section, methods: list[str]) -> pd.DataFrame:
    return wide(group_stats(rows, section.tasks), "method", "length", methods)


def group_tasks_table(stats: pd.DataFrame, section: Section, method: str) -> pd.DataFrame:
    """task x length for one method, with interval, n and prompt tokens per cell."""
    sub = stats[stats["task"].isin(section.tasks) & (stats["method"] == method)]
    return wide(sub, "task", "length", section.tasks)


def subtask_table(stats: pd.DataFrame, task: str, methods: list[str]) -> pd.DataFrame:
    """method x sub-task score, with interval and n (prompt tokens are not known there); a task
    run at each length gets one column per (sub-task, length)."""
    sub = stats[stats["task"] == task]
    if (sub["length"] > 0).any():
        sub = sub.assign(subtask=sub["subtask"] + " @ " + sub["length"].astype(str))
    return wide(sub, "method", "subtask", methods, tokens=False)


# ---------------------------------------------------------------- the summary

@dataclass
class Score:
    """A summary column holding a score, what it measures and which way is better."""

    column: str
    what: str
    higher_is_better: bool


def _put(summary: pd.DataFrame, column: str, values: pd.DataFrame) -> None:
    """`values` (indexed by method: score, low, high, n) as `column` and its companions."""
    values = values.reindex(summary.index)
    for suffix, source in (("", "score"), (" low", "low"), (" high", "high"), (" n", "n")):
        summary[f"{column}{suffix}"] = values[source]


def _pooled(task: Task, rows: pd.DataFrame, column: str = "score") -> pd.DataFrame:
    out = {}
    for method, group in rows.groupby("method", sort=False):
        n, score, low, high = cell_interval(task, group.assign(score=group[column]))
        out[method] = {"n": n, "score": score, "low": low, "high": high}
    return pd.DataFrame.from_dict(out, orient="index", columns=["score", "low", "high", "n"])


def _mark_ties(summary: pd.DataFrame, score: Score) -> None:
    """`C best` for the best method of the column, `C tied` for those whose interval overlaps it."""
    column = score.column
    values = summary[column].astype(float)
    best, tied = pd.Series(False, index=summary.index), pd.Series(False, index=summary.index)
    if values.notna().any():
        top = values.idxmax() if score.higher_is_better else values.idxmin()
        span = (float(summary.loc[top, f"{column} low"]), float(summary.loc[top, f"{column} high"]))
        best[top] = True
        for method in summary.index:
            if method != top and not math.isnan(values[method]):
                tied[method] = overlap(span, (float(summary.loc[method, f"{column} low"]),
                                              float(summary.loc[method, f"{column} high"])))
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


def summary_scores(results: RunResults, threshold: float | None = None) -> tuple[pd.DataFrame, list[Score]]:
    """The summary table and its score columns, in order (the first one ranks the methods)."""
    rows, methods = results.rows, method_order(results)
    window = int(results.spec.get("window", 0))
    summary = pd.DataFrame(index=pd.Index(methods, name="method"))
    summary["kind"] = [m.method for m in results.methods]
    scores: list[Score] = []
    groups = 0
    for section in sections(rows):
        sub = rows[rows["task"].isin(section.tasks)]
        higher = section.higher_is_better
        if section.kind == "group":
            prefix = "" if groups == 0 else f"{section.abbrev} "
            groups += 1
            stats = group_stats(rows, section.tasks)
            longest = []
            for length in sorted(stats["length"].unique()):
                column = f"{section.abbrev} {length}"
                _put(summary, column, stats[stats["length"] == length].set_index("method"))
                longest.insert(0, Score(column, f"the {section.abbrev} mean at {length} tokens", higher))
            scores += longest  # the longest length first: it ranks the methods
            table = group_by_length(rows, methods, section.key)
            if not table.empty:
                if threshold is None:
                    threshold = group_threshold(table, results.baseline, window)
                per = {m: _per_length(table.loc[m]) for m in methods if m in table.index}
                summary[f"{prefix}effective length"] = [
                    effective_length(per[m], threshold) if m in per else None for m in methods]
                summary[f"{prefix}NoLiMa effective length"] = [
                    relative_effective_length(per[m]) if m in per else None for m in methods]
                summary[f"{prefix}wAvg(inc)"] = [wavg_inc(per[m]) if m in per else None for m in methods]
                summary[f"{prefix}wAvg(dec)"] = [wavg_dec(per[m]) if m in per else None for m in methods]
            summary[f"{section.abbrev} tasks"] = [group_coverage(rows, m, section.key) for m in methods]
        elif section.kind == "by_length" and not higher:
            longest = []
            for length in sorted(sub["length"].unique()):
                column = f"{section.abbrev} {length}"
                stats = cell_stats(sub[sub["length"] == length])
                _put(summary, column, stats.groupby("method").first())
                longest.insert(0, Score(column, f"{section.title} at {length} tokens", higher))
            scores += longest
        elif section.kind == "depth_grid":
            column = f"{section.abbrev} pass %"
            passed = sub.assign(passed=(sub["score"].astype(float) >= 1.0).astype(float))
            _put(summary, column, _pooled(task_of(section.key), passed, "passed"))
            scores.append(Score(column, f"the share of {section.title} items fully retrieved", True))
        elif section.kind == "subtasks":
            column = f"{section.abbrev} %"
            stats = cell_stats(sub)
            mean = stats.groupby("method").agg(score=("score", "mean"), n=("n", "sum"))
            half = stats.assign(se=((stats["high"] - stats["low"]) / 2) ** 2).groupby("method")
            spread = half["se"].sum() ** 0.5 / stats.groupby("method").size()
            mean["low"], mean["high"] = mean["score"] - spread, mean["score"] + spread
            _put(summary, column, mean)
            scores.append(Score(column, f"the mean {section.title} score", higher))
            retained_percent(summary, column, f"{section.abbrev} retained %", results.baseline)
        else:
            column = f"{section.abbrev} %" if section.unit == "fraction" else section.abbrev
            _put(summary, column, _pooled(task_of(section.key), sub))
            scores.append(Score(column, f"{section.title}, all lengths", higher))
    for score in scores:
        _mark_ties(summary, score)

    summary["search s"] = [m.search_seconds for m in results.methods]
    summary["search evals"] = [m.search_evaluations for m in results.methods]
    summary["train s"] = [m.train_seconds for m in results.methods]
    summary["train tokens"] = [m.train_tokens for m in results.methods]
    empty = [c for c in summary.columns if summary[c].isna().all()
             and not any(c.endswith(s) and summary[c[: -len(s)]].notna().any() for s in COMPANIONS
                         if c[: -len(s)] in summary.columns)]
    summary = summary.drop(columns=empty)
    counts = [c for c in summary.columns if c.endswith((" n", "effective length"))
              or c in ("search evals", "train tokens")]
    summary = summary.astype({c: "Int64" for c in counts})  # counts, shown without decimals
    return summary, [s for s in scores if s.column in summary]


def summary_table(results: RunResults, threshold: float | None = None) -> pd.DataFrame:
    """One row per method: every section's score with its interval, n and tie marks, then costs."""
    return summary_scores(results, threshold)[0]


def headline(results: RunResults, summary: pd.DataFrame, scores: list[Score]) -> str:
    """The ranking by the first score column and which differences its intervals support."""
    if not scores:
        return "No scored results yet."
    score = scores[0]
    values = summary[score.column].astype(float).dropna()
    ranked = values.sort_values(ascending=not score.higher_is_better).index.tolist()
    if not ranked:
        return "No scored results yet."

    def show(method: str) -> str:
        low, high = summary.loc[method, f"{score.column} low"], summary.loc[method, f"{score.column} high"]
        return f"{method} ({values[method]:.1f} [{low:.1f}, {high:.1f}])"

    direction = "higher" if score.higher_is_better else "lower"
    text = f"Ranked by {score.what} ({direction} is better): " + ", ".join(show(m) for m in ranked) + "."
    if len(ranked) == 1:
        return text
    top = ranked[0]
    tied = [m for m in ranked[1:] if bool(summary.loc[m, f"{score.column} tied"])]
    ahead = [m for m in ranked[1:] if m not in tied]
    parts = []
    if ahead:
        parts.append(f"the 95% intervals support {top} being ahead of {_words(ahead)}")
    if tied:
        whose = f"{tied[0]}'s interval overlaps" if len(tied) == 1 else \
            f"the intervals of {_words(tied)} overlap"
        parts.append(f"{whose} {top}'s, so the data do not support {top} being ahead of "
                     f"{'it' if len(tied) == 1 else 'them'} (marked as tied)")
    sentence = "; ".join(parts)
    return f"{text} {sentence[0].upper()}{sentence[1:]}."


def _words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]

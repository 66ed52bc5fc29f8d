"""A task made of sub-tasks (lm-eval tasks run through the harness): a method x sub-task table
(one column per sub-task and length where it runs per length), and in the summary the mean
sub-task score with the share of the original model's it keeps."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from ropebench.reports.cells import cell_stats, scale_of, task_of, wide
from ropebench.reports.scores import Score, Summary, retained_percent
from ropebench.reports.sections import ReportData, Section, SectionKind, Table, section_kind
from ropebench.stats import mean_of_fractions


def subtask_table(stats: pd.DataFrame, task: str, methods: list[str]) -> pd.DataFrame:
    """method x sub-task score, with interval and n (prompt tokens are not known there); a task
    run at each length gets one column per (sub-task, length)."""
    sub = stats[stats["task"] == task]
    if (sub["length"] > 0).any():
        sub = sub.assign(subtask=sub["subtask"] + " @ " + sub["length"].astype(str))
    return wide(sub, "method", "subtask", methods, tokens=False)


def subtask_mean(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method: the plain mean of its sub-task cells' scores with Wilson's interval at their
    effective count (`stats.mean_of_fractions`), as score, low, high and n (items)."""
    out = {}
    for method, cells in cell_stats(rows).groupby("method", sort=False):
        scale = scale_of(task_of(str(cells["task"].iloc[0])))
        mean = mean_of_fractions((cells["score"] / scale).tolist(), cells["n"].tolist())
        out[method] = asdict(mean.scaled(scale))
    return pd.DataFrame.from_dict(out, orient="index", columns=["score", "low", "high", "n"])


@section_kind
class Subtasks(SectionKind):
    name = "subtasks"

    def summarize(self, summary: Summary, section: Section, rows: pd.DataFrame) -> list[Score]:
        column = f"{section.abbrev} %"
        summary.put(column, subtask_mean(rows))
        retained_percent(summary.frame, column, f"{section.abbrev} retained %",
                         summary.results.baseline)
        return [Score(column, f"the mean {section.title} score", section.higher_is_better)]

    def tables(self, data: ReportData, section: Section) -> list[Table]:
        return [Table(section.key, subtask_table(data.stats, section.key, data.methods))]

    def note(self, section: Section) -> str:
        return ("Score per sub-task (x100) with Wilson's 95% interval over its samples (an "
                "lm-eval row counts its items) and n.")

    def length_stats(self, rows: pd.DataFrame, section: Section) -> pd.DataFrame | None:
        return None  # short-context tasks as a whole, even where they run per length

    def whole_stats(self, rows: pd.DataFrame, section: Section) -> pd.DataFrame:
        return subtask_mean(rows)

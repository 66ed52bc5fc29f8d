"""A task made of sub-tasks (lm-eval tasks run through the harness): a method x sub-task table
(one column per sub-task and length where it runs per length), and in the summary the mean
sub-task score with the share of the original model's it keeps."""

from __future__ import annotations

import pandas as pd

from ropebench.reports.cells import cell_stats, wide
from ropebench.reports.scores import Score, Summary, retained_percent
from ropebench.reports.sections import ReportData, Section, SectionKind, Table, section_kind


def subtask_table(stats: pd.DataFrame, task: str, methods: list[str]) -> pd.DataFrame:
    """method x sub-task score, with interval and n (prompt tokens are not known there); a task
    run at each length gets one column per (sub-task, length)."""
    sub = stats[stats["task"] == task]
    if (sub["length"] > 0).any():
        sub = sub.assign(subtask=sub["subtask"] + " @ " + sub["length"].astype(str))
    return wide(sub, "method", "subtask", methods, tokens=False)


def subtask_mean(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method: the mean of its sub-task cells' scores, its interval and n (score, low, high,
    n), from the section's `rows`."""
    stats = cell_stats(rows)
    mean = stats.groupby("method").agg(score=("score", "mean"), n=("n", "sum"))
    half = stats.assign(se=((stats["high"] - stats["low"]) / 2) ** 2).groupby("method")
    spread = half["se"].sum() ** 0.5 / stats.groupby("method").size()
    mean["low"], mean["high"] = mean["score"] - spread, mean["score"] + spread
    return mean


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
        return ("Score per sub-task (x100) with a 95% interval from the harness's standard "
                "error where it reports one.")

    def length_stats(self, rows: pd.DataFrame, section: Section) -> pd.DataFrame | None:
        return None  # short-context tasks as a whole, even where they run per length

    def whole_stats(self, rows: pd.DataFrame, section: Section) -> pd.DataFrame:
        return subtask_mean(rows)

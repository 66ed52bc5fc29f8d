"""A group of tasks (RULER) shown as one section: the mean of its task scores per length, each
method's task x length table, and in the summary the mean per length with RULER's effective
lengths and weighted averages."""

from __future__ import annotations

import pandas as pd

from ropebench.reports import figures, published
from ropebench.reports.cells import wide
from ropebench.reports.groups import (
    group_by_length,
    group_coverage,
    group_stats,
    group_threshold,
    per_length,
)
from ropebench.reports.scores import Score, Summary
from ropebench.reports.sections import ReportData, Section, SectionKind, Table, section_kind
from ropebench.tasks import GROUPS, Task
from ropebench.tasks.ruler.aggregate import (
    effective_length,
    relative_effective_length,
    wavg_dec,
    wavg_inc,
)


def group_mean_table(rows: pd.DataFrame, section: Section, methods: list[str]) -> pd.DataFrame:
    return wide(group_stats(rows, section.tasks), "method", "length", methods)


def group_tasks_table(stats: pd.DataFrame, section: Section, method: str) -> pd.DataFrame:
    """task x length for one method, with interval, n and prompt tokens per cell."""
    sub = stats[stats["task"].isin(section.tasks) & (stats["method"] == method)]
    return wide(sub, "task", "length", section.tasks)


def _aggregates(summary: Summary, section: Section, prefix: str) -> None:
    """RULER's effective lengths and weighted averages of each method's mean per length."""
    results = summary.results
    table = group_by_length(results.rows, summary.methods, section.key)
    if table.empty:
        return
    if summary.threshold is None:
        summary.threshold = group_threshold(table, results.baseline, int(results.spec.get("window", 0)))
    threshold = summary.threshold
    aggregates = {"effective length": lambda scores: effective_length(scores, threshold),
                  "NoLiMa effective length": relative_effective_length,
                  "wAvg(inc)": wavg_inc, "wAvg(dec)": wavg_dec}
    per = {m: per_length(table.loc[m]) for m in summary.methods if m in table.index}
    for column, aggregate in aggregates.items():
        summary.frame[f"{prefix}{column}"] = [aggregate(per[m]) if m in per else None
                                              for m in summary.methods]


@section_kind
class Group(SectionKind):
    name = "group"
    rank = 0  # first: a group's mean per length is what a long-context comparison ranks by

    def takes(self, task: Task) -> bool:
        return bool(task.group)

    def section_key(self, task: Task) -> str:
        return str(task.group)

    def new_section(self, task: Task) -> Section:
        title = task.group_title or str(task.group)
        return Section(self.name, str(task.group), title, title, task.unit)

    def finish(self, section: Section) -> None:
        members = GROUPS.get(section.key, ())
        section.tasks.sort(key=lambda n: members.index(n) if n in members else len(members))

    def summarize(self, summary: Summary, section: Section, rows: pd.DataFrame) -> list[Score]:
        prefix = "" if summary.groups == 0 else f"{section.abbrev} "
        summary.groups += 1
        stats = group_stats(summary.results.rows, section.tasks)
        longest = []
        for length in sorted(stats["length"].unique()):
            column = f"{section.abbrev} {length}"
            summary.put(column, stats[stats["length"] == length].set_index("method"))
            longest.insert(0, Score(column, f"the {section.abbrev} mean at {length} tokens",
                                    section.higher_is_better))
        _aggregates(summary, section, prefix)
        summary.frame[f"{section.abbrev} tasks"] = [
            group_coverage(summary.results.rows, m, section.key) for m in summary.methods]
        return longest  # the longest length first: it ranks the methods

    def tables(self, data: ReportData, section: Section) -> list[Table]:
        found = [Table(f"{section.key}_by_length", group_mean_table(data.rows, section, data.methods),
                       title="Mean per length")]
        return found + [Table(f"{section.key}_tasks_{method}",
                              group_tasks_table(data.stats, section, method), title=method,
                              index_name="task", grid=True) for method in data.methods]

    def note(self, section: Section) -> str:
        return (f"Mean of the {len(section.tasks)} {section.title} task scores (0-100) per length "
                "with Wilson's 95% interval at the tasks' effective sample count. Per method: "
                "each task's score with its Wilson interval, n samples and mean prompt tokens.")

    def summary_note(self, section: Section) -> str:
        members = len(GROUPS.get(section.key, section.tasks))
        return (f"{section.title} columns: mean of the {section.title} task scores (0-100) at each "
                f"length, over {len(section.tasks)} of {members} tasks ({', '.join(section.tasks)}); "
                f"its interval is Wilson's at the tasks' effective sample count. {section.title} "
                f"tasks: how many of the {members} tasks each mean covers, \"partial\" when fewer "
                "(a task that did not fit or whose data was missing).")

    def figure(self, data: ReportData, section: Section) -> str | None:
        return figures.by_length(group_mean_table(data.rows, section, data.methods), data.results,
                                 title=f"{section.title} score vs length (95% intervals)",
                                 ylabel="score (0-100)", ylim=(-2, 102),
                                 references=published.figure_lines(data.results, section.key))

    def markdown(self, data: ReportData, section: Section) -> list[tuple[str, pd.DataFrame]]:
        table = group_mean_table(data.rows, section, data.methods)
        return [(f"{section.title} score by length:", table)]

    def length_stats(self, rows: pd.DataFrame, section: Section) -> pd.DataFrame | None:
        return group_stats(rows, section.tasks)

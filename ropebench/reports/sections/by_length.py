"""A task shown per length: a method x length table; in the summary a lower-is-better score
(perplexity) gets one column per length, a pass rate one column over all lengths."""

from __future__ import annotations

import pandas as pd

from ropebench.reports import figures
from ropebench.reports.cells import cell_stats, task_of, wide
from ropebench.reports.scores import Score, Summary, pooled
from ropebench.reports.sections import ReportData, Section, SectionKind, Table, section_kind


def by_length_table(stats: pd.DataFrame, task: str, methods: list[str]) -> pd.DataFrame:
    """method x length of one task, with interval, n and prompt tokens per cell."""
    return wide(stats[stats["task"] == task], "method", "length", methods)


@section_kind
class ByLength(SectionKind):
    name = "by_length"

    def summarize(self, summary: Summary, section: Section, rows: pd.DataFrame) -> list[Score]:
        if section.higher_is_better:
            column = f"{section.abbrev} %"
            summary.put(column, pooled(task_of(section.key), rows))
            return [Score(column, f"{section.title}, all lengths", True)]
        longest = []
        for length in sorted(rows["length"].unique()):
            column = f"{section.abbrev} {length}"
            stats = cell_stats(rows[rows["length"] == length])
            summary.put(column, stats.groupby("method").first())
            longest.insert(0, Score(column, f"{section.title} at {length} tokens", False))
        return longest  # the longest length first

    def tables(self, data: ReportData, section: Section) -> list[Table]:
        table = by_length_table(data.stats, section.key, data.methods)
        return [Table(f"{section.key}_by_length", table)]

    def note(self, section: Section) -> str:
        what = "score x100 with Wilson's 95% interval" if section.higher_is_better else \
            "perplexity (lower is better), intervals bootstrapped over documents"
        return f"Per length: {what}, n and the mean prompt tokens actually used."

    def figure(self, data: ReportData, section: Section) -> str | None:
        if data.stats[data.stats["task"] == section.key]["length"].nunique() < 2:
            return None
        table = by_length_table(data.stats, section.key, data.methods)
        title = f"{section.title} vs length (95% intervals)"
        if section.higher_is_better:
            return figures.by_length(table, data.results, title=title, ylabel="score (0-100)",
                                     ylim=(-2, 102))
        return figures.by_length(table, data.results, title=title, ylabel=section.unit, log_y=True)

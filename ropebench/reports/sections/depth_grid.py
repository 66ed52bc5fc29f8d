"""A task over a depth x length grid (needle in a haystack): its by-length table, one depth x
length table and heatmap per method, and in the summary the share of items fully retrieved."""

from __future__ import annotations

import math

import pandas as pd

from ropebench.reports import figures
from ropebench.reports.cells import task_of
from ropebench.reports.scores import Score, Summary, pooled
from ropebench.reports.sections import ReportData, Section, Table, section_kind
from ropebench.reports.sections.by_length import ByLength


def depth_grid(rows: pd.DataFrame, task: str, method: str) -> pd.DataFrame:
    """depth x length mean score (0..1) of a depth-grid task for one method."""
    sub = rows[(rows["task"] == task) & (rows["method"] == method)]
    if sub.empty:
        return pd.DataFrame()
    sub = sub.assign(depth=sub["metadata"].map(lambda meta: float((meta or {}).get("depth", math.nan))))
    return sub.pivot_table(index="depth", columns="length", values="score", aggfunc="mean")


@section_kind
class DepthGrid(ByLength):
    name = "depth_grid"

    def summarize(self, summary: Summary, section: Section, rows: pd.DataFrame) -> list[Score]:
        column = f"{section.abbrev} pass %"
        passed = rows.assign(passed=(rows["score"].astype(float) >= 1.0).astype(float))
        summary.put(column, pooled(task_of(section.key), passed, "passed"))
        return [Score(column, f"the share of {section.title} items fully retrieved", True)]

    def tables(self, data: ReportData, section: Section) -> list[Table]:
        grids = [Table(f"{section.key}_{method}", depth_grid(data.rows, section.key, method),
                       html=False) for method in data.methods]
        return super().tables(data, section) + grids

    def figure(self, data: ReportData, section: Section) -> str | None:
        grids = {m: depth_grid(data.rows, section.key, m) for m in data.methods}
        return figures.heatmaps(data.results, {m: g for m, g in grids.items() if not g.empty})

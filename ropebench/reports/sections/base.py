"""What a report section is and what a section kind must say about one: its summary columns,
its tables (the same frames feed the CSV files and the HTML page), its note, figure and
short-context scores. Nothing here names a task or a kind."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ropebench.reports.cells import cell_stats
from ropebench.reports.results import RunResults
from ropebench.reports.scores import Score, Summary
from ropebench.tasks import Task


@dataclass
class Section:
    """One part of the report: a group of tasks (RULER), or one task shown the way it declares."""

    kind: str  # the name of its `SectionKind` in `SECTION_KINDS`
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


@dataclass
class Table:
    """One table of a section: a CSV file `stem`.csv and, where `html`, a table on the page."""

    stem: str
    frame: pd.DataFrame
    title: str = ""  # its heading on the page ("": none)
    index_name: str = "method"
    html: bool = True
    grid: bool = False  # on the page, side by side with the section's other grid tables


@dataclass
class ReportData:
    """What section kinds read: the run and every cell's score, computed once per report."""

    results: RunResults
    stats: pd.DataFrame  # `cells.cell_stats` of every row

    @classmethod
    def of(cls, results: RunResults) -> ReportData:
        return cls(results, cell_stats(results.rows))

    @property
    def rows(self) -> pd.DataFrame:
        return self.results.rows

    @property
    def methods(self) -> list[str]:
        return self.results.labels


class SectionKind:
    """How the report lays out one kind of section. A task names its kind in `Task.report`; a
    kind registers itself with `@section_kind` (see docs/report-sections.md)."""

    name: str = ""
    rank: int = 1  # sections are listed by rank (lowest first), then in task order

    def takes(self, task: Task) -> bool:
        """False: the task asked for this kind but lacks what it needs (it gets the fallback)."""
        return True

    def section_key(self, task: Task) -> str:
        """Tasks with the same key share one section."""
        return task.name

    def new_section(self, task: Task) -> Section:
        return Section(self.name, task.name, task.display_title, task.short_name, task.unit)

    def finish(self, section: Section) -> None:
        """Called once every task of the run is in its section (e.g. to order them)."""

    def summarize(self, summary: Summary, section: Section, rows: pd.DataFrame) -> list[Score]:
        """Add the section's score columns to `summary` (`rows`: the section's tasks only);
        returns them in ranking order."""
        return []

    def tables(self, data: ReportData, section: Section) -> list[Table]:
        return []

    def note(self, section: Section) -> str:
        """The line under the section's heading: what its tables show and their intervals."""
        return ""

    def summary_note(self, section: Section) -> str:
        """What the section's summary columns mean, for the summary's explanation ("": nothing)."""
        return ""

    def figure(self, data: ReportData, section: Section) -> str | None:
        return None

    def markdown(self, data: ReportData, section: Section) -> list[tuple[str, pd.DataFrame]]:
        """(caption, table) pairs summary.md shows after the summary."""
        return []

    def length_stats(self, rows: pd.DataFrame, section: Section) -> pd.DataFrame | None:
        """method, length, n, score, low, high of the section's `rows`, for the short-context
        half; None: the section is short context as a whole (see `whole_stats`)."""
        stats = cell_stats(rows)
        return stats.groupby(["method", "length"], as_index=False).first()

    def whole_stats(self, rows: pd.DataFrame, section: Section) -> pd.DataFrame:
        """score, low, high, n per method of a section read as a whole (`rows`: its tasks')."""
        return pd.DataFrame(columns=["score", "low", "high", "n"])

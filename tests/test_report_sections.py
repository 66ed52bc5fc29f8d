"""Report section kinds: a kind registered from outside the package gets its own section, summary
column, tables (page and CSV) and note, with no change to the report's modules."""

from __future__ import annotations

import pandas as pd
import pytest
from test_report import _passes, _rewrite, make_run

from ropebench.reports.cells import wide
from ropebench.reports.export import markdown_summary, write_csv
from ropebench.reports.html import render_html
from ropebench.reports.results import load_run
from ropebench.reports.scores import Score, Summary, pooled
from ropebench.reports.sections import (
    SECTION_KINDS,
    ReportData,
    Section,
    SectionKind,
    Table,
    sections,
)
from ropebench.reports.summary import summary_table
from ropebench.tasks.base import GenerativeTask
from ropebench.tasks.registry import TASKS


class Ladder(SectionKind):
    """Shows a task as a length x method table (lengths down, methods across)."""

    name = "ladder"

    def summarize(self, summary: Summary, section: Section, rows: pd.DataFrame) -> list[Score]:
        column = f"{section.abbrev} rungs %"
        summary.put(column, pooled(TASKS.get(section.key), rows))
        return [Score(column, f"{section.title} rungs climbed", True)]

    def tables(self, data: ReportData, section: Section) -> list[Table]:
        stats = data.stats[data.stats["task"] == section.key]
        return [Table(f"{section.key}_ladder", wide(stats, "length", "method"), title="Rungs",
                      index_name="length")]

    def note(self, section: Section) -> str:
        return "Rungs climbed per length and method."


class Climb(GenerativeTask):
    name = "plugin_climb"
    title = "Plugin climb"
    abbrev = "climb"
    report = "ladder"


class Fallback(GenerativeTask):
    name = "plugin_unknown_kind"
    title = "Unknown kind"
    report = "no_such_kind"


@pytest.fixture
def registered():
    SECTION_KINDS.add(Ladder.name, Ladder())
    TASKS.add(Climb.name, Climb())
    TASKS.add(Fallback.name, Fallback())
    try:
        yield
    finally:
        SECTION_KINDS._builtins.pop(Ladder.name)
        TASKS._builtins.pop(Climb.name)
        TASKS._builtins.pop(Fallback.name)


def test_a_section_kind_registered_outside_the_package_is_rendered(tmp_path, registered):
    run = make_run(tmp_path / "run")
    _rewrite(run, {m: _passes("plugin_climb", 1024, k, 8) + _passes("plugin_climb", 2048, k // 2, 8)
                   + _passes("plugin_unknown_kind", 1024, k, 8)
                   for m, k in (("none", 2), ("pi", 6), ("longrope2", 8))})
    results = load_run(run)
    assert [(s.kind, s.key) for s in sections(results.rows)] == [
        ("ladder", "plugin_climb"), ("by_length", "plugin_unknown_kind")]
    summary = summary_table(results)
    assert summary.loc["pi", "climb rungs %"] == pytest.approx(100 * 9 / 16)
    assert summary.loc["pi", "climb rungs % n"] == 16

    page = render_html(results)
    body = page[page.index('<h2 id="plugin-climb">Plugin climb</h2>'):]
    assert body.index("Rungs climbed per length and method.") < body.index("<h3>Rungs</h3>")
    assert "<tr><th>length</th><th>longrope2</th><th>none</th><th>pi</th></tr>" in body
    assert '<h2 id="plugin-unknown-kind">Unknown kind</h2>' in page  # the fallback kind
    assert "Ranked by Plugin climb rungs climbed" in page

    written = {p.name for p in write_csv(results, tmp_path / "csv")}
    assert {"plugin_climb_ladder.csv", "plugin_unknown_kind_by_length.csv"} <= written
    ladder = pd.read_csv(tmp_path / "csv" / "plugin_climb_ladder.csv", index_col="length")
    assert ladder.loc[2048, "pi"] == pytest.approx(100 * 3 / 8)
    assert "climb rungs %" in markdown_summary(results)


def test_the_built_in_kinds_come_from_the_sections_package():
    assert {"group", "by_length", "depth_grid", "subtasks"} <= set(SECTION_KINDS.names())

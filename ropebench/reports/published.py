"""Published numbers beside a run: the rows a plan's `published:` list (or `ropebench report
--published`) names, drawn on their group's figure and compared where the run measured the same
model at the same lengths (measured minus published, the run's 95% interval, and whether the
published number lies inside it). Which group a row belongs to is the row's own `benchmark`."""

from __future__ import annotations

from typing import Any

from ropebench.reports.groups import group_stats
from ropebench.reports.results import RunResults
from ropebench.run.published import PublishedRow, compare, get_published, model_matches
from ropebench.tasks import GROUPS


def named_rows(results: RunResults) -> list[PublishedRow]:
    """The published rows the run's plan names (unknown names are an error)."""
    return [get_published(name) for name in dict.fromkeys(results.plan.get("published") or [])]


def figure_lines(results: RunResults, group: str) -> list[tuple[str, dict[int, float]]]:
    """(label, {length: score}) of every named row of `group`, for the group's figure."""
    return [(f"published: {row.name}", row.scores) for row in named_rows(results)
            if row.benchmark == group]


def _method_label(results: RunResults, row: PublishedRow) -> str | None:
    """The run's method that measured what the row measured: same label, else same kind."""
    labels = [m.label for m in results.methods]
    if row.method in labels:
        return row.method
    return next((m.label for m in results.methods if m.method == row.method), None)


def _measured(results: RunResults, row: PublishedRow, label: str) -> dict[int, tuple]:
    members = GROUPS.get(row.benchmark, ())
    stats = group_stats(results.rows, list(members))
    stats = stats[stats["method"] == label]
    return {int(s.length): (float(s.score), float(s.low), float(s.high), int(s.n))
            for s in stats.itertuples()}


def views(results: RunResults) -> list[dict[str, Any]]:
    """One entry per named row: its source and scores, and the comparison or why there is none."""
    out = []
    for row in named_rows(results):
        view: dict[str, Any] = {"name": row.name, "title": row.title, "source": row.source,
                                "table": row.table, "url": row.url, "version": row.version,
                                "model": row.model, "scores": row.scores,
                                "comparisons": [], "note": ""}
        label = _method_label(results, row)
        if row.model is None:
            view["note"] = "not compared: the checkpoint this row measured was not released"
        elif not model_matches(results.model, row.model):
            view["note"] = (f"not compared: the run measured {results.model}, the row "
                            f"{row.model}")
        elif label is None:
            view["note"] = f"not compared: the run has no method {row.method!r}"
        else:
            found = compare(row, _measured(results, row, label))
            view["comparisons"] = [{
                "length": c.length, "measured": c.measured, "low": c.low, "high": c.high,
                "n": c.n, "published": c.published, "difference": c.difference,
                "inside": c.inside, "statement": c.statement()} for c in found]
            if not found:
                view["note"] = "not compared: the run has none of the row's lengths"
            view["method"] = label
        out.append(view)
    return out

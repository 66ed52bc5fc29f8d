"""Render a comparison run as one self-contained HTML page (jinja2, autoescaped)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ropebench.reports import figures, published, retention
from ropebench.reports.cells import COMPANIONS, task_of, task_order
from ropebench.reports.configuration import as_text, configuration_table
from ropebench.reports.results import RunResults
from ropebench.reports.sections import ReportData, kind_of, sections
from ropebench.reports.summary import build_summary

SAMPLE_OUTPUTS_PER_TASK = 1  # predictions shown per (method, task), at the longest length
MARKS = {"best": "", "tied": " ≈"}


def _companion(frame: pd.DataFrame, column: Any) -> bool:
    name = str(column)
    return any(name.endswith(s) and name[: -len(s)] in frame.columns for s in COMPANIONS)


def cell_view(frame: pd.DataFrame, index: Any, column: Any, digits: int) -> dict[str, str] | str:
    """One cell: its value, and where the frame has them its interval, n, prompt tokens and mark."""
    value = frame.at[index, column]
    if f"{column} low" not in frame.columns:
        return format_value(value, digits)
    if _missing(value):
        return "-"

    def get(suffix: str) -> Any:
        name = f"{column}{suffix}"
        return frame.at[index, name] if name in frame.columns else None

    low, high, n, tokens = get(" low"), get(" high"), get(" n"), get(" tokens")
    mark = "best" if get(" best") is True or get(" best") == 1 else (
        "tied" if get(" tied") is True or get(" tied") == 1 else "")
    return {
        "value": format_value(value, digits),
        "ci": "" if _missing(low) else f"[{format_value(low, digits)}, {format_value(high, digits)}]",
        "n": "" if _missing(n) else f"n={int(n)}",
        "tokens": "" if _missing(tokens) else f"{float(tokens):.0f} tok",
        "mark": mark,
    }


def cell_text(cell: dict[str, str] | str) -> str:
    """A cell as plain text (Markdown, CSV readers): `62.5 [40.1, 81.2] n=40 ≈`."""
    if isinstance(cell, str):
        return cell
    parts = [cell["value"], cell["ci"], cell["n"], cell.get("tokens", "")]
    return " ".join(p for p in parts if p) + MARKS.get(cell["mark"], "")


def table_view(frame: pd.DataFrame, *, index_name: str | None = None, digits: int = 1) -> dict[str, Any]:
    """A DataFrame as header + rows of display cells (the template escapes them); companion
    columns (`C low`, `C high`, `C n`, ...) fold into their column's cells."""
    shown = [c for c in frame.columns if not _companion(frame, c)]
    columns = [index_name or frame.index.name or ""] + [str(c) for c in shown]
    rows = [[str(index)] + [cell_view(frame, index, c, digits) for c in shown] for index in frame.index]
    return {"columns": columns, "rows": rows}


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def format_value(value: Any, digits: int = 1) -> str:
    if _missing(value):
        return "-"
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1000:
            return f"{int(value)}"
        return f"{value:.{digits}f}"
    return str(value)


def sample_outputs(results: RunResults) -> list[dict[str, Any]]:
    """A few raw model outputs per method and task, so readers can see what 'wrong' looks like."""
    rows = results.rows
    generated = rows[rows["prediction"].map(lambda p: isinstance(p, str) and p != "")]
    picked = []
    for (method, task), group in generated.groupby(["method", "task"], sort=False):
        longest = group[group["length"] == group["length"].max()]
        for _, row in longest.head(SAMPLE_OUTPUTS_PER_TASK).iterrows():
            picked.append({
                "method": method, "task": task, "length": int(row["length"]),
                "score": format_value(float(row["score"]), 2),
                "prediction": row["prediction"],
                "references": ", ".join(str(r) for r in (row["references"] or [])),
            })
    return picked


def fidelity_choices(rows: pd.DataFrame) -> tuple[list[str], list[dict[str, str]]]:
    """The options that shaped each task's prompts, as its samples recorded them (under the
    options' own names, see `Task.prompt_options`): the columns (every option some task
    recorded, in the tasks' declaration order) and one row per task, "-" where it has none."""
    declared = {task: task_of(task).prompt_options() for task in dict.fromkeys(rows["task"])}
    found: dict[str, dict[str, set[str]]] = {}
    for task, meta in zip(rows["task"], rows["metadata"], strict=True):
        for key in declared[task]:
            if isinstance(meta, dict) and key in meta:
                found.setdefault(task, {}).setdefault(key, set()).add(str(meta[key]))
    order = task_order(list(found))
    columns = list(dict.fromkeys(key for task in order for key in declared[task] if key in found[task]))
    return columns, [{"task": task, **{k: ", ".join(sorted(found[task].get(k, ()))) or "-"
                                       for k in columns}} for task in order]


def section_views(data: ReportData) -> list[dict[str, Any]]:
    """Every task section: its anchor, title, note, figure and tables, as its kind lays it out."""
    views = []
    for section in sections(data.rows):
        kind = kind_of(section)
        digits = 1 if section.higher_is_better else 2
        items = [{"title": t.title, "grid": t.grid,
                  "table": table_view(t.frame, index_name=t.index_name, digits=digits)}
                 for t in kind.tables(data, section) if t.html and not (t.grid and t.frame.empty)]
        views.append({"anchor": section.anchor, "title": section.title, "note": kind.note(section),
                      "figure": kind.figure(data, section),
                      "figure_alt": f"{section.title} per method", "items": items})
    return views


def retention_views(results: RunResults) -> list[dict[str, Any]]:
    """Per section, the score at the target beside the score and retention at the original window."""
    views = []
    for view in retention.retentions(results):
        digits = 1 if view.section.unit == "fraction" else 2
        where = "as a whole" if view.short is None else f"at {view.short} tokens"
        views.append({"title": view.section.title, "where": where,
                      "table": table_view(view.table, index_name="method", digits=digits)})
    return views


def render_html(results: RunResults, *, threshold: float | None = None) -> str:
    from jinja2 import Environment, PackageLoader

    env = Environment(loader=PackageLoader("ropebench.reports", "templates"),
                      autoescape=True)
    summary = build_summary(results, threshold)
    data = ReportData.of(results)
    fidelity_keys, fidelity = fidelity_choices(results.rows)
    notes = [kind_of(s).summary_note(s) for s in sections(results.rows)]
    context = {
        "results": results,
        "headline": retention.headline(results, summary.frame, summary.scores),
        "retention": retention_views(results),
        "configuration": table_view(as_text(configuration_table(results))),
        "threshold": None if summary.threshold is None else format_value(float(summary.threshold)),
        "summary_notes": [note for note in notes if note],
        "summary": table_view(summary.frame),
        "scores": summary.scores,
        "sections": section_views(data),
        "figures": figures.all_figures(results),
        "samples": sample_outputs(results),
        "fidelity_keys": fidelity_keys,
        "fidelity": fidelity,
        "plan": json.dumps(results.plan, indent=2, default=str),
        "environment": json.dumps(results.environment, indent=2, default=str),
        "pending": [m.label for m in results.methods if not m.complete],
        "published": published.views(results),
    }
    return env.get_template("report.html.j2").render(**context)


def write_html(results: RunResults, out: Path, *, threshold: float | None = None) -> Path:
    from ropebench.io import write_text_atomic

    write_text_atomic(out, render_html(results, threshold=threshold))
    return out

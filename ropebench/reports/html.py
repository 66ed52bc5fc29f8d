"""Render a comparison run as one self-contained HTML page (jinja2, autoescaped)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ropebench.reports import figures, tables
from ropebench.reports.results import RunResults

SAMPLE_OUTPUTS_PER_TASK = 1  # predictions shown per (method, task), at the longest length


def table_view(frame: pd.DataFrame, *, index_name: str | None = None, digits: int = 1) -> dict[str, Any]:
    """A DataFrame as header + rows of display strings (the template escapes them)."""
    columns = [index_name or frame.index.name or ""] + [str(c) for c in frame.columns]
    rows = [[str(index)] + [format_value(v, digits) for v in values]
            for index, values in zip(frame.index, frame.itertuples(index=False), strict=True)]
    return {"columns": columns, "rows": rows}


def format_value(value: Any, digits: int = 1) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
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


def render_html(results: RunResults, *, threshold: float | None = None) -> str:
    from jinja2 import Environment, PackageLoader

    methods = tables.method_order(results)
    rows = results.rows
    env = Environment(loader=PackageLoader("ropebench.reports", "templates"),
                      autoescape=True)
    summary = tables.summary_table(results, threshold)
    ruler = tables.ruler_by_length(rows, methods)
    if threshold is None and not ruler.empty:
        threshold = tables.ruler_threshold(ruler, results.baseline, int(results.spec.get("window", 0)))
    context = {
        "results": results,
        "threshold": None if threshold is None else format_value(float(threshold)),
        "ruler_included": [t for t in tables.RULER_TASKS if t in set(rows["task"])],
        "summary": table_view(summary),
        "ruler_tasks": [
            {"method": m, "table": table_view(tables.ruler_task_table(rows, m), index_name="task")}
            for m in methods if not tables.ruler_task_table(rows, m).empty
        ],
        "ppl": table_view(tables.metric_by_length(rows, "ppl", methods), digits=2),
        "passkey": table_view(tables.metric_by_length(rows, "passkey", methods, scale=100)),
        "needle_ppl": table_view(tables.metric_by_length(rows, "needle_ppl", methods), digits=2),
        "short": table_view(tables.short_table(rows, methods)),
        "figures": figures.all_figures(results),
        "samples": sample_outputs(results),
        "plan": json.dumps(results.plan, indent=2, default=str),
        "environment": json.dumps(results.environment, indent=2, default=str),
        "pending": [m.label for m in results.methods if not m.complete],
    }
    return env.get_template("report.html.j2").render(**context)


def write_html(results: RunResults, out: Path, *, threshold: float | None = None) -> Path:
    from ropebench.io import write_text_atomic

    write_text_atomic(out, render_html(results, threshold=threshold))
    return out

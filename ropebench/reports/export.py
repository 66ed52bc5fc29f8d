"""CSV tables and a Markdown summary of a comparison run, for spreadsheets, papers and PRs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ropebench.io import write_text_atomic
from ropebench.reports import tables
from ropebench.reports.html import format_value
from ropebench.reports.results import RunResults


def result_tables(results: RunResults, *, threshold: float | None = None) -> dict[str, pd.DataFrame]:
    """Every table of the report by file stem (empty tables left out)."""
    rows, methods = results.rows, tables.method_order(results)
    found = {
        "summary": tables.summary_table(results, threshold),
        "ruler_by_length": tables.ruler_by_length(rows, methods),
        "ppl_by_length": tables.metric_by_length(rows, "ppl", methods),
        "passkey_by_length": tables.metric_by_length(rows, "passkey", methods, scale=100),
        "short": tables.short_table(rows, methods),
    }
    for method in methods:
        found[f"ruler_tasks_{method}"] = tables.ruler_task_table(rows, method)
        found[f"niah_{method}"] = tables.niah_grid(rows, method)
    return {name: frame for name, frame in found.items() if not frame.empty}


def write_csv(results: RunResults, out_dir: Path, *, threshold: float | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in result_tables(results, threshold=threshold).items():
        path = out_dir / f"{name}.csv"
        write_text_atomic(path, frame.to_csv())
        written.append(path)
    return written


def markdown_table(frame: pd.DataFrame, digits: int = 1) -> str:
    """A GitHub-flavoured pipe table (no extra dependency such as tabulate)."""
    header = [str(frame.index.name or "")] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(frame.columns)) + "|"]
    for index, values in zip(frame.index, frame.itertuples(index=False), strict=True):
        cells = [str(index)] + [format_value(v, digits) for v in values]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def markdown_summary(results: RunResults, *, threshold: float | None = None) -> str:
    summary = tables.summary_table(results, threshold)
    parts = [
        f"### RoPE extension: {results.name}",
        "",
        f"Model `{results.model}`, window {results.spec.get('window', '?')} -> "
        f"{results.target_length} tokens. RULER = mean task score (0-100) per length.",
        "",
        markdown_table(summary),
    ]
    ruler = tables.ruler_by_length(results.rows, tables.method_order(results))
    if not ruler.empty:
        parts += ["", "RULER score by length:", "", markdown_table(ruler)]
    if not results.complete:
        parts += ["", "_Incomplete run: some stages have not finished._"]
    return "\n".join(parts) + "\n"


def write_markdown(results: RunResults, out: Path, *, threshold: float | None = None) -> Path:
    write_text_atomic(out, markdown_summary(results, threshold=threshold))
    return out

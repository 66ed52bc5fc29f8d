"""CSV tables and a Markdown summary of a comparison run, for spreadsheets, papers and PRs."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

from ropebench.io import write_text_atomic
from ropebench.reports import retention
from ropebench.reports.configuration import as_text, configuration_table
from ropebench.reports.html import cell_text, table_view
from ropebench.reports.results import RunResults
from ropebench.reports.sections import ReportData, kind_of, sections
from ropebench.reports.summary import summary_scores, summary_table


def safe_stem(name: str) -> str:
    """A file stem from a table name built from labels: letters, digits, `-`, `_`, `.` only, no
    leading dot, so it names one file inside the tables folder whatever the label holds."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".") or "table"
    return stem[:150]


def result_tables(results: RunResults, *, threshold: float | None = None) -> dict[str, pd.DataFrame]:
    """Every table of the report by file stem (empty tables left out); values and their interval,
    n and prompt tokens sit in separate columns (`C`, `C low`, `C high`, `C n`, `C tokens`)."""
    data = ReportData.of(results)
    found = {"summary": summary_table(results, threshold), "cells": data.stats.set_index("method")}
    for section in sections(data.rows):
        found.update({table.stem: table.frame for table in kind_of(section).tables(data, section)})
    for view in retention.retentions(results):
        found[f"{view.section.key}_short_context"] = view.table
    found["configuration"] = configuration_table(results)
    return {name: frame for name, frame in found.items() if not frame.empty}


def write_csv(results: RunResults, out_dir: Path, *, threshold: float | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written, used = [], set()
    for name, frame in result_tables(results, threshold=threshold).items():
        stem = safe_stem(name)
        while stem in used:  # two labels that sanitize alike keep separate files
            stem += "_"
        used.add(stem)
        path = out_dir / f"{stem}.csv"
        write_text_atomic(path, frame.to_csv())
        written.append(path)
    return written


def markdown_cell(text: str) -> str:
    """Text for a pipe-table cell: HTML escaped (labels show as text), pipes and newlines kept out."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, digits: int = 1) -> str:
    """A GitHub-flavoured pipe table (no extra dependency such as tabulate); a score's interval
    and n are written beside it (`62.5 [40.1, 81.2] n=40`, `≈`: tied with the column's best)."""
    view = table_view(frame, digits=digits)
    lines = ["| " + " | ".join(markdown_cell(c) for c in view["columns"]) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(view["columns"]) - 1)) + "|"]
    for row in view["rows"]:
        lines.append("| " + " | ".join(markdown_cell(cell_text(c)) for c in row) + " |")
    return "\n".join(lines)


def markdown_summary(results: RunResults, *, threshold: float | None = None) -> str:
    summary, scores = summary_scores(results, threshold)
    parts = [
        f"### RoPE extension: {markdown_cell(results.name)}",
        "",
        markdown_cell(retention.headline(results, summary, scores)),
        "",
        f"Model `{markdown_cell(results.model)}`, window {results.spec.get('window', '?')} -> "
        f"{results.target_length} tokens. Scores carry their 95% interval and n; `≈` marks a method "
        "whose interval overlaps the best one's in that column.",
        "",
        markdown_table(summary),
    ]
    data = ReportData.of(results)
    for section in sections(results.rows):
        for caption, table in kind_of(section).markdown(data, section):
            if not table.empty:
                parts += ["", markdown_cell(caption), "", markdown_table(table)]
    short = retention.primary(results)
    if short is not None:
        where = "as a whole" if short.short is None else f"at {short.short} tokens"
        parts += ["", f"Short context kept ({markdown_cell(short.section.title)} {where}, % of the "
                  "original model, 95% interval):", "", markdown_table(short.table)]
    parts += ["", "Configuration per method (`-`: not recorded):", "",
              markdown_table(as_text(configuration_table(results)))]
    if not results.complete:
        parts += ["", "_Incomplete run: some stages have not finished._"]
    return "\n".join(parts) + "\n"


def write_markdown(results: RunResults, out: Path, *, threshold: float | None = None) -> Path:
    write_text_atomic(out, markdown_summary(results, threshold=threshold))
    return out

"""Showing results: tables (pandas), figures (matplotlib), one HTML page, CSV and Markdown.

Reads a run directory written by `ropebench compare`; never runs a model.
"""

from __future__ import annotations

from pathlib import Path

from ropebench.errors import RopebenchError


def write_report(run_dir: Path, out: Path | None = None, *, threshold: float | None = None,
                 published: tuple[str, ...] = ()) -> Path:
    """Write `out` (default RUN_DIR/report.html), `tables/*.csv` and `summary.md` beside it;
    `published`: published rows to set beside the run, besides those its plan names."""
    from ropebench.reports.export import write_csv, write_markdown
    from ropebench.reports.html import write_html
    from ropebench.reports.results import load_run

    results = load_run(run_dir)
    if results.rows.empty:  # every stage pending or skipped: nothing to tabulate yet
        raise RopebenchError(f"{run_dir} holds no result rows yet (no stage has finished with rows); "
                             "run `ropebench compare` (or `eval`) to completion, then report")
    if published:
        names = [*(results.plan.get("published") or []), *published]
        results.plan = {**results.plan, "published": list(dict.fromkeys(names))}
    out = Path(out) if out is not None else Path(run_dir) / "report.html"
    write_csv(results, out.parent / "tables", threshold=threshold)
    write_markdown(results, out.parent / "summary.md", threshold=threshold)
    return write_html(results, out, threshold=threshold)

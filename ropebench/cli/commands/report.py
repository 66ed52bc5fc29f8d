"""`ropebench report RUN_DIR [--out FILE]`: one self-contained HTML page, CSV tables, Markdown."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the --out folder of `ropebench compare`")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="HTML file to write (default: RUN_DIR/report.html); the CSV tables go "
                             "to a `tables` folder and the Markdown summary to summary.md beside it")
    parser.add_argument("--threshold", type=float, default=None,
                        help="RULER score (0-100) a length must beat to count towards the effective "
                             "length (default: 0.9 x the original model's score at its own window)")


def run(args: argparse.Namespace) -> int:
    from ropebench.reports import write_report

    html = write_report(Path(args.run_dir), None if args.out is None else Path(args.out),
                        threshold=args.threshold)
    print(f"CSV tables: {html.parent / 'tables'}")
    print(f"Markdown summary: {html.parent / 'summary.md'}")
    print(f"Report: {html}")
    return 0

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
    parser.add_argument("--published", action="append", default=[], metavar="NAME",
                        help="a published row (ropebench/data/published) to draw beside the run "
                             "and compare with it where the model and lengths match; repeatable")


def run(args: argparse.Namespace) -> int:
    import math

    from ropebench.errors import RopebenchError
    from ropebench.io import FolderLock
    from ropebench.reports import write_report

    if args.threshold is not None and not (math.isfinite(args.threshold)
                                           and 0 <= args.threshold <= 100):
        raise RopebenchError(f"--threshold {args.threshold} must be a RULER score from 0 to 100")
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise RopebenchError(f"RUN_DIR {run_dir} is not a folder; give the --out folder of compare")
    _check_inputs(run_dir)
    from ropebench.run.published import get_published

    for name in args.published:
        get_published(name)  # an unknown row: one line, before anything is written
    if args.out is not None and Path(args.out).is_dir():
        raise RopebenchError(f"--out {args.out} is a folder; give an HTML file name, e.g. {args.out}/report.html")
    folder = run_dir if args.out is None else Path(args.out).parent
    # The lock makes `folder` a guarded root: no write below it passes through a link (`tables`).
    with FolderLock(folder, "--out", name=".ropebench-report.lock"):
        html = write_report(Path(args.run_dir), None if args.out is None else Path(args.out),
                            threshold=args.threshold, published=tuple(args.published))
    print(f"CSV tables: {html.parent / 'tables'}")
    print(f"Markdown summary: {html.parent / 'summary.md'}")
    print(f"Report: {html}")
    return 0


def _check_inputs(run_dir: Path) -> None:
    """The run's manifest and every rows file, read strictly before the report is built: a
    corrupt line in the middle of rows.jsonl or a score that is not a number is an error, never
    a row silently left out."""
    import math

    from ropebench.errors import RopebenchError
    from ropebench.io import read_json, read_jsonl

    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        return  # the report says what is missing
    manifest = read_json(manifest_path, "run manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("methods"), list):
        raise RopebenchError(
            f"{manifest_path} is not a ropebench run manifest; re-run `ropebench compare` on "
            "this folder to rewrite it"
        )
    for entry in manifest["methods"]:
        for stage in _stages(entry):
            _check_stage_path(run_dir, manifest_path, stage)
    for rows_path in sorted(run_dir.rglob("rows.jsonl")):
        for number, row in enumerate(read_jsonl(rows_path), start=1):
            score = row.get("score") if isinstance(row, dict) else None
            if (isinstance(score, bool) or not isinstance(score, int | float)
                    or not math.isfinite(score)):
                raise RopebenchError(
                    f"{rows_path}: row {number} has score {score!r}, not a finite number; delete "
                    "that row (it is recomputed on the next run) or the file"
                )


def _stages(entry: object) -> list[object]:
    if not isinstance(entry, dict):
        return [entry]
    evals = entry.get("evals")
    return [entry.get("scaling"), *([entry["train"]] if entry.get("train") else []),
            *(evals.values() if isinstance(evals, dict) else [evals])]


def _check_stage_path(run_dir: Path, manifest_path: Path, stage: object) -> None:
    """A stage's `path` is a folder inside the run: relative, without `..`, no link out of it."""
    import os

    from ropebench.errors import RopebenchError

    path = stage.get("path") if isinstance(stage, dict) else None
    inside = (isinstance(path, str) and path and not os.path.isabs(path)
              and ".." not in Path(path).parts)
    if inside:
        real_run = os.path.realpath(run_dir)
        inside = os.path.realpath(run_dir / path).startswith(real_run + os.sep)
    if not inside:
        raise RopebenchError(
            f"{manifest_path} names a stage at {path!r}, outside the run folder; re-run "
            "`ropebench compare` on this folder to rewrite the manifest"
        )

"""`ropebench reproduce NAME [--out FILE]`: the plan that would measure a published row again."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ropebench.run.published import PublishedRow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", nargs="?", default=None,
                        help="a published row (omit it to list them)")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="YAML plan to write (default: reproduce-NAME.yaml here)")
    parser.add_argument("--model", metavar="PATH", default=None,
                        help="the model to measure instead of the row's (a local copy, or the "
                             "checkpoint of a row whose model was not released)")


def _header(row: PublishedRow, model: str) -> str:
    """The plan's comment lines: what it reproduces, from where, and what the source leaves open."""
    lines = [f"Reproduces {row.title}.",
             f"Source: {row.source}, {row.table}, {row.url}"
             + (f" ({row.version})" if row.version else ""),
             f"Needs a GPU machine with the model ({model}) and RULER's data (essays, SQuAD, "
             "HotpotQA)."]
    if row.samples is None:
        lines.append(f"The source states no sample count; {row.plan_samples} per task and "
                     "length is RULER's default.")
    if row.trained:
        lines.append("The authors fine-tuned the extended model: size train: to their budget "
                     "(see the note).")
    if row.note:
        lines.append(f"Note: {row.note}")
    lines.append("Run: ropebench compare THIS_FILE --out DIR; the report sets the published row "
                 "beside the run.")
    return "".join(f"# {line}\n" for line in lines)


def run(args: argparse.Namespace) -> int:
    import yaml

    from ropebench.errors import RopebenchError
    from ropebench.io import write_text_atomic
    from ropebench.run.published import get_published, published_rows, reproduction_plan

    if args.name is None:
        for row in published_rows().values():
            print(f"{row.name}: {row.title} ({row.source})")
        return 0
    row = get_published(args.name)
    plan = reproduction_plan(row, args.model)  # a row without a released model needs --model
    out = Path(args.out or f"reproduce-{row.name}.yaml")
    if out.is_dir():
        raise RopebenchError(f"--out {out} is a folder; give a YAML file name, e.g. {out}/plan.yaml")
    write_text_atomic(out, _header(row, plan["model"]) + yaml.safe_dump(plan, sort_keys=False))
    print(f"plan written to {out}")
    return 0

"""`ropebench reproduce NAME [--out FILE]`: the plan that would measure a published row again."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", nargs="?", default=None,
                        help="a published row (omit it to list them)")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help="YAML plan to write (default: reproduce-NAME.yaml here)")


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
    out = Path(args.out or f"reproduce-{row.name}.yaml")
    if out.is_dir():
        raise RopebenchError(f"--out {out} is a folder; give a YAML file name, e.g. {out}/plan.yaml")
    header = (f"# Reproduces {row.title}.\n# Source: {row.source}, {row.url}\n"
              f"# Needs a GPU machine with the model ({row.model}) and RULER's data (essays, "
              "SQuAD, HotpotQA).\n# Run: ropebench compare THIS_FILE --out DIR; the report "
              "sets the published row beside the run.\n")
    write_text_atomic(out, header + yaml.safe_dump(reproduction_plan(row), sort_keys=False))
    print(f"plan written to {out}")
    return 0

"""`ropebench demo [--out DIR]`: the comparison in the README, end to end, offline.

Compares none, pi, ntk, yarn and longrope2 on the built-in reference model (512 -> 4096 tokens),
then renders the report and prints its path. Re-running resumes or reuses finished work.
`--set SECTION.KEY=VALUE` changes the demo plan as `ropebench compare` does (e.g. train.steps=10).
"""

from __future__ import annotations

import argparse
import time
from importlib import resources
from pathlib import Path

from ropebench.cli.commands.arguments import add_set_option
from ropebench.cli.commands.compare import NOTE, TAKES

DEFAULT_OUT = "demo-run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", default=DEFAULT_OUT,
                        help=f"run directory (default: ./{DEFAULT_OUT})")
    parser.add_argument("--model", default=None,
                        help="run the demo plan on another model instead of the reference model")
    add_set_option(parser, TAKES, NOTE)
    parser.add_argument("--quiet", action="store_true", help="no progress bars or status lines")


def demo_plan_path() -> Path:
    return Path(str(resources.files("ropebench.run") / "plans" / "demo.yaml"))


def run(args: argparse.Namespace) -> int:
    from ropebench.model.load import resolve_model_path
    from ropebench.outdir import claim_output
    from ropebench.reports import write_report
    from ropebench.run.estimate import estimate_seconds
    from ropebench.run.overrides import parse_set
    from ropebench.run.plan import load_plan
    from ropebench.run.runner import ComparisonRunner, describe

    settings = parse_set(args.overrides, TAKES, "demo").as_plan()
    plan = load_plan(demo_plan_path(), {"model": args.model, "out": args.out, **settings})
    if Path(args.out).exists() and not Path(args.out).is_dir():
        from ropebench.errors import RopebenchError

        raise RopebenchError(f"--out {args.out} is a file; give a folder for the demo run")
    claim_output(args.out, model=resolve_model_path(plan.model))
    runner = ComparisonRunner(plan, Path(args.out), progress=not args.quiet)
    if not runner.writes:  # another process of a torchrun launch: work, rank 0 reports
        runner.run()
        return 0
    print(describe(runner))
    budget = estimate_seconds(runner)
    print(f"Budget: about {budget / 60:.0f} min for the stages still to run (estimated from a "
          "timed forward pass on this machine); progress is shown per stage.", flush=True)
    started = time.perf_counter()
    runner.run()
    report = write_report(Path(args.out))
    print(f"Demo finished in {(time.perf_counter() - started) / 60:.1f} min.")
    print(f"Report: {report.resolve()}")
    return 0

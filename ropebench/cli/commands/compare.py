"""`ropebench compare [PLAN] --out RUN_DIR`: run a comparison plan, resumably.

The plan is a YAML file (see `ropebench.run.plan`); flags override its top-level keys, or
replace the file altogether: `ropebench compare --model reference --target-length 4096
--methods pi,yarn,longrope2 --tasks ruler,passkey --lengths 512,4096 --out runs/x`.
`--set SECTION.KEY=VALUE` writes a setting into the plan at the same key (`--set train.steps=50`
is `train: {steps: 50}`; see `ropebench.run.overrides`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ropebench.cli.commands.arguments import add_set_option
from ropebench.errors import RopebenchError
from ropebench.run.overrides import BACKEND, SEARCH, TASK, TASKS, TRAIN

# A method's params live in its plan entry: there is no plan-wide `params:` to write into.
TAKES = (SEARCH, TRAIN, TASK, TASKS, BACKEND)
NOTE = ("Each setting is written into the plan at that key, so the plan's precedence holds: a "
        "method's own\nsearch:/train: mapping and a task's own option win over the plan-wide "
        "value.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", metavar="PLAN", nargs="?", help="YAML plan file (optional with flags)")
    parser.add_argument("--out", metavar="RUN_DIR", help="run directory (default: the plan's `out`)")
    parser.add_argument("--model", help="model directory, hub id or `reference`")
    parser.add_argument("--target-length", type=int, help="context length to extend to")
    parser.add_argument("--methods", help="comma-separated methods (replaces the plan's)")
    parser.add_argument("--tasks", help="comma-separated tasks or groups, e.g. ruler,niah,ppl")
    parser.add_argument("--lengths", help="comma-separated evaluation lengths, e.g. 512,1024,4k")
    parser.add_argument("--samples", type=int, help="samples per task and length")
    parser.add_argument("--seed", type=int, help="evaluation seed")
    add_set_option(parser, TAKES, NOTE)
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the plan and list its stages (cached or to run), run nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or status lines")
    parser.add_argument("--force", action="store_true",
                        help="RUN_DIR holds files ropebench did not write: move them into "
                             "RUN_DIR/set-aside-<time>/ (never deleted) instead of stopping")


def plan_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags and `--set` settings that were given, as plan keys."""
    from ropebench.run.overrides import parse_set
    from ropebench.run.plan import merge

    evaluate = {k: v for k, v in {"tasks": args.tasks, "lengths": args.lengths,
                                   "samples": args.samples, "seed": args.seed}.items() if v is not None}
    methods = None if args.methods is None else [m.strip() for m in args.methods.split(",") if m.strip()]
    flags = {"model": args.model, "target_length": args.target_length, "methods": methods,
             "evaluate": evaluate or None, "out": args.out}
    return merge(flags, parse_set(args.overrides, TAKES, "compare").as_plan())


def run(args: argparse.Namespace) -> int:
    from ropebench.model.load import resolve_model_path
    from ropebench.outdir import claim_output
    from ropebench.run.plan import load_plan, plan_from_dict
    from ropebench.run.runner import ComparisonRunner, describe

    overrides = plan_overrides(args)
    if args.plan is not None:
        plan = load_plan(args.plan, overrides)
    else:
        missing = [flag for flag, value in (("--model", args.model), ("--target-length", args.target_length),
                                            ("--methods", args.methods), ("--tasks", args.tasks),
                                            ("--lengths", args.lengths)) if value is None]
        if missing:
            raise RopebenchError(f"give a PLAN file, or the flags {', '.join(missing)}")
        plan = plan_from_dict({k: v for k, v in overrides.items() if v is not None}, source="flags")
    if plan.out is None:
        raise RopebenchError("no run directory: pass --out RUN_DIR or set `out:` in the plan")
    if Path(plan.out).exists() and not Path(plan.out).is_dir():
        raise RopebenchError(f"run directory {plan.out} is a file; give a folder for --out")
    claim_output(plan.out, force=args.force, model=resolve_model_path(plan.model),
                 dry_run=args.dry_run)
    runner = ComparisonRunner(plan, Path(plan.out), progress=not args.quiet)
    if runner.writes:  # under torchrun, rank 0 speaks for every process
        print(describe(runner))
    if args.dry_run:
        if runner.writes:
            print(dry_run_budget(runner))
        return 0
    runner.run()
    empty = [stage.label for stage in runner.pending()]
    if runner.writes and empty:
        print(f"{len(empty)} evaluation stage(s) produced no rows ({', '.join(empty[:3])}): see the "
              "'skipping' lines above; fix the task options or lengths and run again",
              file=sys.stderr)
    elif runner.writes:
        print(f"Finished. Render the report: ropebench report {plan.out}")
    return 1 if empty else 0


def dry_run_budget(runner) -> str:
    """Memory and time of the pending stages from config.json alone (no weights load): the peak of
    one forward at the longest length, and the work in forwards at an optimistic FLOP rate."""
    import torch

    from ropebench.model.load import load_config_dict
    from ropebench.run.budget import CPU_FLOPS, GPU_FLOPS, available_bytes, estimate
    from ropebench.run.estimate import pending_forwards

    plan, gpu = runner.plan, torch.cuda.is_available()
    config = load_config_dict(plan.model)
    longest = max([plan.target_length, *plan.evaluate.lengths])
    peak = estimate(config, longest, gpu=gpu).bytes
    free = available_bytes(gpu)
    gib = 1024 ** 3
    memory = f"Memory: about {peak / gib:.2f} GiB for one forward at {longest} tokens"
    if free is not None:
        memory += f" ({free / gib:.1f} GiB available{'' if peak <= free else ': it will not fit'})"
    seconds = pending_forwards(runner) * estimate(config, plan.target_length, gpu=gpu).seconds
    rate = f"{(GPU_FLOPS if gpu else CPU_FLOPS) / 1e12:g} TFLOP/s"
    return (f"{memory}.\nTime: at least {seconds / 60:.1f} min for the stages still to run "
            f"(work counted in forward passes at {plan.target_length} tokens, at an optimistic "
            f"{rate}; `ropebench demo` times a real forward instead).")

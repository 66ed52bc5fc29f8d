"""`ropebench eval MODEL [--method NAME --target-length N | --factors FILE] --tasks ... --lengths ...`

Patches the model in memory with the method's RoPE (none: as pretrained), then runs the tasks at
every length and writes one JSON row per sample to `OUT/rows.jsonl` plus `OUT/summary.csv`.
Re-running with the same OUT skips the rows already written. Settings are `--set params.KEY=V`
(the method), `--set TASK.KEY=V` / `tasks.KEY=V` (task options, e.g. niah.depths=4) and
`--set backend.KEY=V` (the engine's options, e.g. backend.batch_size=4).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ropebench.cli.commands.arguments import add_set_option
from ropebench.run.overrides import BACKEND, PARAMS, TASK, TASKS

TAKES = (PARAMS, TASK, TASKS, BACKEND)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="HF model directory, hub id, or `reference`")
    parser.add_argument(
        "--method", default=None, help="extender name (default: none, the model as it is)"
    )
    parser.add_argument(
        "--target-length", type=int, default=None, help="context length the method extends to"
    )
    add_set_option(parser, TAKES)
    parser.add_argument(
        "--factors", type=Path, default=None, help="factors file: a JSON from `ropebench search`/`extend`, a HF config.json with longrope scaling, or a LongRoPE CSV"
    )
    parser.add_argument(
        "--tasks",
        default="ruler",
        help="comma-separated: RULER names (niah_single_1 ... qa_2) or `ruler`, niah, ppl, passkey, needle_ppl, short",
    )
    parser.add_argument(
        "--lengths", default="4096", help="comma-separated context lengths in tokens"
    )
    parser.add_argument(
        "--samples", type=int, default=10, help="samples per task and length (documents for ppl)"
    )
    parser.add_argument("--seed", type=int, default=42, help="sample seed (RULER's default: 42)")
    parser.add_argument(
        "--out", type=Path, required=True, help="results folder (rows.jsonl, summary.csv)"
    )
    parser.add_argument(
        "--label", default=None, help="method name written in the rows (default: the method)"
    )
    parser.add_argument(
        "--backend", default="hf",
        help="inference engine: hf (transformers), vllm, or a plugin's (see docs/engines.md)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--force", action="store_true",
                        help="run lengths the up-front memory/time estimate says cannot finish, "
                             "and move files ropebench did not write in --out into "
                             "OUT/set-aside-<time>/ (never deleted)")
    parser.add_argument(
        "--trust-remote-code", action="store_true", help="allow custom model code from the hub"
    )


def run(args: argparse.Namespace) -> int:
    from ropebench.backends.base import ModelSource
    from ropebench.bounded import check_factors_file
    from ropebench.errors import RopebenchError
    from ropebench.methods import get_extender, load_scaling
    from ropebench.model.load import load_config_dict, resolve_model_path
    from ropebench.outdir import claim_output
    from ropebench.rope.spec import RopeSpec
    from ropebench.run.backends import backend_choice, open_backend
    from ropebench.run.budget import check_fits
    from ropebench.run.evaluate import read_rows, resolve_options, run_evaluation
    from ropebench.run.overrides import parse_set
    from ropebench.run.plan import check_label
    from ropebench.settings import parse_lengths
    from ropebench.tasks import expand_tasks, get_task
    from ropebench.tasks.chat_check import check_folder_template

    overrides = parse_set(args.overrides, TAKES, "eval")
    choice = backend_choice({"name": args.backend, **overrides.backend}, "--backend")
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not names:
        raise RopebenchError("--tasks is empty; give e.g. --tasks ruler,passkey (see `ropebench list`)")
    tasks = expand_tasks(names)
    lengths = parse_lengths(args.lengths, "--lengths")
    if args.label is not None:
        check_label(args.label)
    check_numbers(args)
    if args.out.exists() and not args.out.is_dir():
        raise RopebenchError(f"--out {args.out} is a file; give a folder for the results")
    resolved = resolve_options(overrides.options, [get_task(name) for name in tasks])
    for name in tasks:
        get_task(name).check_lengths(lengths, resolved[name].given_values())
    batch = getattr(choice.parsed_options(), "batch_size", 1)
    analytic = args.factors is None and args.method not in (None, "none")
    if overrides.params and not analytic:
        raise RopebenchError("params.KEY settings configure an analytic --method; give --method "
                             "NAME --target-length N (a --factors file fixes the scaling itself)")

    # Everything that can be checked from config.json is checked before the weights load.
    config = load_config_dict(args.model)
    spec = RopeSpec.from_config(config)
    check_fits(config, lengths, batch=batch, force=args.force)
    scaling = None
    if args.factors is not None:
        check_factors_file(args.factors)
        scaling = load_scaling(args.factors, spec, args.target_length, args.method)
    elif analytic:
        if args.target_length is None:
            raise RopebenchError(f"--method {args.method} needs --target-length N")
        scaling = get_extender(args.method, overrides.params).rescale(spec, args.target_length)

    claim_output(args.out, force=args.force, model=resolve_model_path(args.model))
    check_folder_template(resolve_model_path(args.model), resolved, args.trust_remote_code)
    read_rows(args.out)  # rows another program wrote there fail now, not after the weights load
    label = args.label or (scaling.method if scaling is not None else "none")
    backend = open_backend(choice, ModelSource(args.model, scaling, work_dir=args.out,
                                               trust_remote_code=args.trust_remote_code,
                                               longest=max(lengths)))
    rows = run_evaluation(
        backend,
        identity={"scaling": scaling.identity() if scaling is not None else None},
        method=label,
        tasks=tasks,
        lengths=lengths,
        samples=args.samples,
        seed=args.seed,
        out_dir=args.out,
        options=resolved,
        progress=not args.no_progress,
    )
    getattr(backend, "close", lambda: None)()
    if rows.empty:
        print(f"no rows for {label}: every task was skipped (see the 'skipping' lines above); "
              "try other --lengths or --tasks", file=sys.stderr)
        return 1
    print(summary_table(rows))
    print(f"rows: {args.out / 'rows.jsonl'}  summary: {args.out / 'summary.csv'}")
    return 0


def interrupted(args: argparse.Namespace) -> str:
    """The SIGINT line: how many finished rows --out holds (each batch's rows are on disk when it
    ends; the batch in flight is lost)."""
    from ropebench.run.evaluate import ROWS_FILE, read_rows

    count = len(read_rows(args.out)) if args.out.is_dir() else 0
    if not count:
        return "interrupted before any row was finished; nothing was saved"
    return f"interrupted; {count} finished rows are saved in {args.out / ROWS_FILE}, re-run to resume"


def check_numbers(args: argparse.Namespace) -> None:
    """--samples, --seed and --target-length within what a real run uses."""
    from ropebench.errors import RopebenchError
    from ropebench.settings import MAX_SAMPLES, MAX_SEED, MAX_TOKENS

    for flag, value, least, most in (("--samples", args.samples, 1, MAX_SAMPLES),
                                     ("--seed", args.seed, 0, MAX_SEED),
                                     ("--target-length", args.target_length, 1, MAX_TOKENS)):
        if value is not None and not least <= value <= most:
            raise RopebenchError(f"{flag} must be from {least} to {most}, got {value}")


def summary_table(rows) -> str:
    """Tasks x lengths for this run (RULER-style x100 scores; perplexities as they are)."""
    from ropebench.run.evaluate import summarize

    summary = summarize(rows.to_dict("records"))
    table = summary.pivot_table(index="task", columns="length", values="score", sort=False)
    return table.round(2).to_string()

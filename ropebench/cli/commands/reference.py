"""`ropebench reference train`: (re)build the built-in reference model with ropebench's own code."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = sub.add_parser(
        "train", help="Train the reference model (about 2 hours on 2 CPU cores; re-running resumes)."
    )
    train.add_argument(
        "--out",
        type=Path,
        default=Path("runs/reference"),
        help="work directory (checkpoints, loss log); re-running resumes",
    )
    train.add_argument("--steps", type=int, default=None, help="total optimiser steps")
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--micro",
        action="store_true",
        help="a few steps of a tiny model: a smoke test of the pipeline",
    )
    train.add_argument(
        "--install",
        action="store_true",
        help="copy the result over the shipped checkpoint inside the package",
    )
    card = sub.add_parser("card", help="Measure the shipped model and write its model card.")
    card.add_argument("--train-dir", type=Path, default=Path("runs/reference"),
                      help="the training work directory (config and loss log)")
    card.add_argument("--out", type=Path, default=Path("runs/reference-card"),
                      help="where the measurement rows go (re-running resumes)")
    card.add_argument("--samples", type=int, default=100)
    sub.add_parser("path", help="Print where the shipped reference checkpoint lives.")


def run(args: argparse.Namespace) -> int:
    from ropebench.model.load import reference_model_dir

    if args.action == "path":
        print(reference_model_dir())
        return 0
    if args.action == "card":
        from ropebench.model.load import load_model
        from ropebench.reference.card import CardSettings, measure, write_card

        check_card_inputs(args)
        model, tokenizer = load_model("reference")
        tables = measure(model, tokenizer, args.out, CardSettings(samples=args.samples))
        for name, table in tables.items():
            print(f"\n{name}\n{table.to_string()}")
        print(f"model card written to {write_card(reference_model_dir(), args.train_dir, tables)}")
        return 0
    from ropebench.reference.train import (
        ReferenceTrainConfig,
        micro_config,
        train_reference,
    )

    check_counts(args)
    cfg = micro_config(args.seed) if args.micro else ReferenceTrainConfig(seed=args.seed)
    if args.steps is not None:
        cfg.steps = args.steps
    if args.batch_size is not None:
        cfg.batch_size = args.batch_size
    final = train_reference(args.out, cfg)
    print(f"reference model written to {final}")
    if args.install:
        target = reference_model_dir()
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(final, target)
        print(f"installed into {target}")
    return 0


def check_card_inputs(args: argparse.Namespace) -> None:
    """Everything the card needs at its end (the training log) exists before an hour of
    measuring starts, and the sample count is one a real run uses."""
    from ropebench.bounded import check_regular_file
    from ropebench.errors import RopebenchError
    from ropebench.outdir import claim_output
    from ropebench.settings import MAX_SAMPLES

    if not 1 <= args.samples <= MAX_SAMPLES:
        raise RopebenchError(f"--samples must be from 1 to {MAX_SAMPLES}, got {args.samples}")
    if not args.train_dir.is_dir():
        raise RopebenchError(f"--train-dir {args.train_dir} is not a folder; give the work "
                             "directory of `ropebench reference train` (config and loss log)")
    for name in ("train_config.json", "loss_log.jsonl"):
        check_regular_file(args.train_dir / name, "training record")
    claim_output(args.out)


def check_counts(args: argparse.Namespace) -> None:
    """--steps, --batch-size and --seed of `reference train` within what a real run uses."""
    from ropebench.errors import RopebenchError
    from ropebench.settings import MAX_COUNT, MAX_SEED

    for flag, value, least, most in (("--steps", args.steps, 1, MAX_COUNT),
                                     ("--batch-size", args.batch_size, 1, 4096),
                                     ("--seed", args.seed, 0, MAX_SEED)):
        if value is not None and not least <= value <= most:
            raise RopebenchError(f"{flag} must be from {least} to {most}, got {value}")

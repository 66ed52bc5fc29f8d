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

"""Command-line options that several commands share."""

from __future__ import annotations

import argparse


def add_set_option(
    parser: argparse.ArgumentParser,
    help: str = "extender setting, e.g. --set beta_fast=16 (repeatable)",
) -> None:
    """`--set KEY=VALUE` (repeatable) into `args.overrides`, for `extenders.base.parse_overrides`."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )

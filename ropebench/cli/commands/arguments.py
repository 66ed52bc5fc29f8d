"""Command-line options that several commands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable


class SettingsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the settings epilog's layout, and builds it (a function) only when help is shown, so
    a command does not import every method and task just to run."""

    def add_text(self, text: str | Callable[[], str] | None) -> None:
        super().add_text(text() if callable(text) else text)


def add_set_option(parser: argparse.ArgumentParser, takes: tuple[str, ...], note: str = "") -> None:
    """`--set SECTION.KEY=VALUE` (repeatable) into `args.overrides`, for `run.overrides.parse_set`
    with the same `takes`; the help lists every key of those sections, then `note`."""
    from ropebench.run.overrides import listing

    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help=f"a setting (repeatable): {listing(takes)}; the keys are listed below",
    )
    parser.formatter_class = SettingsHelpFormatter

    def epilog() -> str:
        from ropebench.run.setting_keys import describe

        return describe(takes) + (f"\n{note}" if note else "")

    parser.epilog = epilog  # type: ignore[assignment]  (rendered by SettingsHelpFormatter)

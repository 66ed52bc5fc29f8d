"""The `ropebench` command line.

Each subcommand lives in its own module under `ropebench.cli.commands` and exposes
`add_arguments(parser)` and `run(args) -> int`. Modules are imported only when their command runs
(or to build `--help`), so heavy libraries never slow down `ropebench list`.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from ropebench.errors import RopebenchError

# command name -> (module under ropebench.cli.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("list", "List the registered extenders and tasks (plugins included)."),
    "rope-info": ("rope_info", "Show a model's RoPE: base, rotary dim, window, critical indices, periods."),
    "extend": ("extend", "Apply an extender to a model and save it as a vanilla HF model directory."),
    "eval": ("eval", "Evaluate a (patched) model on RULER, needles, perplexity, passkey, short tasks."),
    "search": ("search", "Search rescale factors (LongRoPE / LongRoPE2 evolutionary search)."),
    "train": ("train", "Fine-tune a model at the target length with an extender's RoPE."),
    "compare": ("compare", "Run a comparison plan: search -> train -> evaluate for every method."),
    "report": ("report", "Render a comparison run as one self-contained HTML page (+ CSV, Markdown)."),
    "demo": ("demo", "Compare none/pi/ntk/yarn/longrope2 on the built-in reference model and report."),
    "reference": ("reference", "Build or train the built-in reference model."),
    "reproduce": ("reproduce", "Write the plan that would reproduce a published row (RULER tables)."),
}


def _load(command: str):
    module_name, _ = COMMANDS[command]
    return importlib.import_module(f"ropebench.cli.commands.{module_name}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ropebench", description=__doc__.splitlines()[0])
    from ropebench import __version__

    parser.add_argument("--version", action="version", version=f"ropebench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Only the chosen command's module is imported; the others show their one-line help.
        if name == only:
            _load(name).add_arguments(p)
    return parser


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(only=chosen)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(_load(args.command).run(args) or 0)
    except RopebenchError as err:
        print(f"ropebench {args.command}: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system said no: read-only, full, name too long, in the way
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        reason = err.strerror or _one_line(str(err)) or type(err).__name__
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"ropebench {args.command}: error: {reason}{where}; free some space and run "
                  "the same command again: what was finished is kept and the rest resumes",
                  file=sys.stderr)
            return 2
        print(f"ropebench {args.command}: error: {reason}{where}; check that the path exists, is "
              "writable and has free space, or choose another --out", file=sys.stderr)
        return 2
    except UnicodeDecodeError as err:
        print(f"ropebench {args.command}: error: an input file is not UTF-8 text ({err.reason} at "
              f"byte {err.start}); save it as UTF-8", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ropebench {args.command}: {_interrupted(args)}", file=sys.stderr)
        return 130


def _interrupted(args: argparse.Namespace) -> str:
    """What an interrupt left behind: a command that knows says it (`interrupted(args)`)."""
    say = getattr(_load(args.command), "interrupted", None)
    if say is None:
        return "interrupted; finished work is saved, re-run to resume."
    try:
        return say(args)
    except (OSError, ValueError, RopebenchError):  # cannot tell what was saved: claim nothing
        return "interrupted; check the output folder for what was saved before re-running."

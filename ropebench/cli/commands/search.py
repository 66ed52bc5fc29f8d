"""`ropebench search MODEL --method longrope2 --target-length N --out FILE`: evolutionary factor search.

The budget and choices are `--set search.KEY=VALUE` (a plan's `search:` keys, e.g.
search.population=16), the method's own settings `--set params.KEY=VALUE`.

The output JSON is a saved `RopeScaling` plus the search record (`fitness_history`, `settings`,
evaluations, seconds), readable by `ropebench extend/eval --factors FILE`. The search state is
checkpointed after every evaluation (default `FILE.checkpoint.json`); re-running the same command
resumes an interrupted search.

Under `torchrun --nproc_per_node N` the new candidates of each generation are dealt out across the
N processes (`ropebench.run.distributed.RankScorer`); the result equals one process's, only rank 0
writes the checkpoint and the output, and a checkpoint resumes under any N.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from ropebench.cli.commands.arguments import add_set_option
from ropebench.run.overrides import PARAMS, SEARCH

TAKES = (PARAMS, SEARCH)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="HF model directory, hub id, or `reference`")
    parser.add_argument("--method", default="longrope2",
                        help="extender whose search runs (longrope2, longrope; others return "
                             "their analytic factors)")
    parser.add_argument("--target-length", type=int, required=True, help="target context length L")
    parser.add_argument("--out", type=Path, required=True, help="factors JSON to write")
    add_set_option(parser, TAKES)
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="search state file (default: OUT.checkpoint.json)")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bar (shorthand for --set search.progress=false)")


def run(args: argparse.Namespace) -> int:
    from ropebench.backends.base import ModelSource
    from ropebench.errors import RopebenchError
    from ropebench.io import FolderLock, write_json_atomic
    from ropebench.methods import get_extender
    from ropebench.methods.base import SearchSettings
    from ropebench.methods.evolution.ga import search_output
    from ropebench.model.load import load_config_dict, resolve_model_path
    from ropebench.outdir import check_not_model
    from ropebench.rope.math import scale_of
    from ropebench.rope.spec import RopeSpec
    from ropebench.run.backends import BackendChoice, open_backend
    from ropebench.run.distributed import world
    from ropebench.run.overrides import parse_set
    from ropebench.run.searching import search_scaling
    from ropebench.search.fitness import spread_lines
    from ropebench.settings import MAX_TOKENS, parse_settings

    overrides = parse_set(args.overrides, TAKES, "search")
    extender = get_extender(args.method, overrides.params)
    rank, world_size = world()
    given = {
        **overrides.search,
        **({"progress": False} if args.no_progress else {}),
    }
    if rank != 0:  # one progress bar, rank 0's
        given["progress"] = False
    settings = parse_settings(extender.search_settings_class or SearchSettings, given,
                              where="search")
    if getattr(settings, "n_hat", 0) and args.method != "longrope":
        raise RopebenchError("search.n_hat applies to --method longrope only")
    checkpoint = args.checkpoint or args.out.with_name(args.out.name + ".checkpoint.json")
    for path, flag in ((args.out, "--out"), (checkpoint, "--checkpoint")):
        if path.is_dir():
            raise RopebenchError(f"{flag} {path} is a folder; give a file name, e.g. {path}/factors.json")
    if not 1 <= args.target_length <= MAX_TOKENS:
        raise RopebenchError(f"--target-length must be from 1 to {MAX_TOKENS}, got "
                             f"{args.target_length}")
    # The target is checked against config.json before any weights load.
    spec = RopeSpec.from_config(load_config_dict(args.model))
    scale_of(spec, args.target_length)
    for path, flag in ((args.out, "--out"), (checkpoint, "--checkpoint")):
        check_not_model(path, resolve_model_path(args.model), flag)
        if path.is_symlink():  # found now, not after the search: it would be written through
            raise RopebenchError(f"{flag} {path} is a symbolic link; ropebench never writes "
                                 "through links: remove it or give another file name")
    if rank == 0:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
    # Only rank 0 writes (the checkpoint and the output), so only rank 0 holds the lock.
    lock = (FolderLock(checkpoint.parent, "--out", name=f".{checkpoint.name}.lock") if rank == 0
            else contextlib.nullcontext())
    with lock:
        backend = open_backend(BackendChoice().for_stage("search"), ModelSource(args.model))
        scaling = search_scaling(backend, extender, spec, args.target_length, settings,
                                 checkpoint)
        if rank != 0:
            return 0
        write_json_atomic(args.out, search_output(scaling))
    record = scaling.search
    if record is not None and record.fitness_history:
        print(f"best {settings.fitness} {record.fitness_history[-1]:.4f} after "
              f"{record.evaluations} evaluations ({record.seconds:.0f} s); critical index "
              f"{scaling.critical_index}")
    if record is not None and record.baseline_fitness:
        print("on the same documents: " + ", ".join(
            f"{k} {v:.4f}" for k, v in record.baseline_fitness.items()))
    if record is not None and record.baseline_spread:
        print("baselines on other document sets (how much a win on the fitness set means):")
        print("\n".join(spread_lines(record.baseline_spread, settings.documents)))
    print(f"factors written to {args.out}")
    return 0

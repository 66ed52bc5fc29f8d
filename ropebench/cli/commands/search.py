"""`ropebench search MODEL --method longrope2 --target-length N --out FILE`: evolutionary factor search.

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ropebench.methods.evolution.settings import EvolutionSettings

    d = EvolutionSettings()
    parser.add_argument("model", help="HF model directory, hub id, or `reference`")
    parser.add_argument("--method", default="longrope2",
                        help="extender whose search runs (longrope2, longrope; others return "
                             "their analytic factors)")
    parser.add_argument("--target-length", type=int, required=True, help="target context length L")
    parser.add_argument("--out", type=Path, required=True, help="factors JSON to write")
    parser.add_argument("--population", type=int, default=d.population)
    parser.add_argument("--iterations", type=int, default=d.iterations)
    parser.add_argument("--parents", type=int, default=None,
                        help=f"survivors per generation (default: half the population, {d.parents})")
    parser.add_argument("--mutations", type=int, default=None,
                        help=f"mutants per generation (default: a quarter of the population, {d.mutations})")
    parser.add_argument("--crossovers", type=int, default=None,
                        help=f"crossover children per generation (default: a quarter, {d.crossovers})")
    parser.add_argument("--mutation-prob", type=float, default=d.mutation_prob)
    parser.add_argument("--crossover-prob", type=float, default=d.crossover_prob)
    parser.add_argument("--samples", "--documents", dest="documents", type=int, default=d.documents,
                        help="documents the fitness averages over")
    parser.add_argument("--fitness", default=None,
                        help="fitness function: needle_ppl (LongRoPE2 default), ppl (LongRoPE default)")
    parser.add_argument("--mode", choices=("paper", "released"), default=d.mode,
                        help="paper: scan critical indices d10_tcd..d_tcd; released: fix d_tcd - 1")
    parser.add_argument("--critical-index", type=int, default=None, help="fix the critical pair index")
    parser.add_argument("--mscale", choices=("longrope", "yarn"), default=d.mscale,
                        help="attention temperature of the candidates: sqrt(1+ln s/ln L) (longrope) "
                        "or 0.1 ln s + 1 (yarn, an option of the released LongRoPE2 code)")
    parser.add_argument("--haystack", default=d.haystack, help="fitness text: pydoc, essay, noise, a folder")
    parser.add_argument("--n-hat", type=int, default=d.n_hat,
                        help="LongRoPE: first positions that keep the original RoPE")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--baselines", default=",".join(d.baselines),
                        help="comma-separated methods whose analytic factors are scored on the "
                        "fitness documents for comparison ('' for none)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="search state file (default: OUT.checkpoint.json)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from ropebench.backends.hf import HFBackend
    from ropebench.errors import RopebenchError
    from ropebench.io import FolderLock, write_json_atomic
    from ropebench.methods import get_extender
    from ropebench.methods.base import SearchSettings
    from ropebench.methods.evolution.ga import search_output
    from ropebench.model.load import load_config_dict, load_model
    from ropebench.model.patch import spec_of
    from ropebench.rope.math import scale_of
    from ropebench.rope.spec import RopeSpec
    from ropebench.run.distributed import RankScorer, barrier, process_place, world
    from ropebench.search.fitness import make_scorer
    from ropebench.settings import field_names, parse_settings

    extender = get_extender(args.method)
    rank, world_size = world()
    given = {
        "population": args.population, "iterations": args.iterations,
        "parents": args.parents, "mutations": args.mutations, "crossovers": args.crossovers,
        "mutation_prob": args.mutation_prob, "crossover_prob": args.crossover_prob,
        "documents": args.documents,
        "fitness": args.fitness or ("ppl" if args.method == "longrope" else "needle_ppl"),
        "mode": args.mode, "critical_index": args.critical_index, "haystack": args.haystack,
        "mscale": args.mscale, "seed": args.seed, "n_hat": args.n_hat,
        "progress": not args.no_progress and rank == 0,
        "baselines": [name.strip() for name in args.baselines.split(",") if name.strip()],
    }
    settings_class = extender.search_settings_class or SearchSettings
    known = set(field_names(settings_class))
    settings = parse_settings(settings_class, {k: v for k, v in given.items() if k in known},
                              where="search")
    if args.n_hat and args.method != "longrope":
        raise RopebenchError("--n-hat applies to --method longrope only")
    checkpoint = args.checkpoint or args.out.with_name(args.out.name + ".checkpoint.json")
    for path, flag in ((args.out, "--out"), (checkpoint, "--checkpoint")):
        if path.is_dir():
            raise RopebenchError(f"{flag} {path} is a folder; give a file name, e.g. {path}/factors.json")
    # The target is checked against config.json before any weights load.
    scale_of(RopeSpec.from_config(load_config_dict(args.model)), args.target_length)
    rank, world_size, device = process_place()  # joins the process group under torchrun
    if rank == 0:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
    # Only rank 0 writes (the checkpoint and the output), so only rank 0 holds the lock.
    lock = (FolderLock(checkpoint.parent, "--out", name=f".{checkpoint.name}.lock") if rank == 0
            else contextlib.nullcontext())
    with lock:
        model, tokenizer = load_model(args.model, device=device)
        spec = spec_of(model)
        scorer = make_scorer(HFBackend(model, tokenizer, identity={"model": args.model}),
                             args.target_length, settings)
        if world_size > 1:
            scorer = RankScorer(scorer, rank, world_size)
        scaling = extender.search(spec, args.target_length, scorer, settings,
                                  checkpoint=checkpoint)
        barrier(world_size)
        if rank != 0:
            return 0
        write_json_atomic(args.out, search_output(scaling))
    history = scaling.extra.get("fitness_history", [])
    if history:
        print(f"best {settings.fitness} {history[-1]:.4f} after {scaling.extra['evaluations']} "
              f"evaluations ({scaling.extra['seconds']:.0f} s); critical index {scaling.critical_index}")
    baselines = scaling.extra.get("baseline_fitness") or {}
    if baselines:
        print("on the same documents: " + ", ".join(f"{k} {v:.4f}" for k, v in baselines.items()))
    print(f"factors written to {args.out}")
    return 0

"""`ropebench train MODEL --method NAME --target-length N --out DIR`: fine-tune with a method's RoPE.

Every extender trains the same way (plain rows of the target length, its rescaled RoPE), except
LongRoPE2, which uses mixed context window training unless `--set params.mixed=false`.
`--factors FILE` trains with searched factors instead of the method's analytic ones. The budget is
`--set train.KEY=VALUE` (a plan's `train:` keys, e.g. train.steps=50). Re-running resumes from the
last checkpoint in DIR. For several GPUs: `accelerate launch -m ropebench train ...`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ropebench.cli.commands.arguments import add_set_option
from ropebench.run.overrides import PARAMS, TRAIN

TAKES = (PARAMS, TRAIN)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="HF model directory, hub id, or `reference`")
    parser.add_argument("--method", required=True, help="extender name (see `ropebench list`)")
    parser.add_argument("--target-length", type=int, required=True, help="row length L in tokens")
    parser.add_argument("--out", type=Path, required=True, help="output HF model directory")
    parser.add_argument("--factors", type=Path, default=None,
                        help="factors file: a JSON from `ropebench search`/`extend`, a HF config.json with longrope scaling, or a LongRoPE CSV (instead of analytic factors)")
    parser.add_argument("--force", action="store_true",
                        help="--out holds files ropebench did not write: move them into "
                             "OUT/set-aside-<time>/ (never deleted) instead of stopping")
    add_set_option(parser, TAKES)


def run(args: argparse.Namespace) -> int:
    from ropebench.backends.base import ModelSource
    from ropebench.bounded import check_factors_file
    from ropebench.errors import RopebenchError
    from ropebench.methods import get_extender, load_scaling
    from ropebench.model.load import load_config_dict, resolve_model_path
    from ropebench.model.patch import spec_of
    from ropebench.outdir import claim_output
    from ropebench.rope.spec import RopeSpec
    from ropebench.run.backends import BackendChoice, open_backend
    from ropebench.run.overrides import parse_set
    from ropebench.settings import MAX_TOKENS, parse_settings
    from ropebench.training.data import load_documents
    from ropebench.training.trainer import TrainSettings, check_arms, train_model

    overrides = parse_set(args.overrides, TAKES, "train")
    settings = parse_settings(TrainSettings, overrides.train, where="train")
    # With --factors the method's settings still choose its training layout (params.mixed).
    extender = get_extender(args.method, overrides.params)
    if "export" not in extender.engines:
        raise RopebenchError(f"{args.method} is a training-free attention method and its model "
                             "cannot be saved as a HF directory; evaluate it with `ropebench eval`")
    if args.out.exists() and not args.out.is_dir():
        raise RopebenchError(f"--out {args.out} is a file; give a folder for the trained model")
    if not 1 <= args.target_length <= MAX_TOKENS:
        raise RopebenchError(f"--target-length must be from 1 to {MAX_TOKENS}, got "
                             f"{args.target_length}")
    # The method, target and factors are checked against config.json before any weights load.
    config_spec = RopeSpec.from_config(load_config_dict(args.model))
    if args.factors is not None:
        check_factors_file(args.factors)
        load_scaling(args.factors, config_spec, args.target_length, args.method)
    else:
        extender.rescale(config_spec, args.target_length)
    check_arms(settings, extender, config_spec.window, args.target_length)
    if settings.data != "reference":  # a missing or empty local source fails now
        data = Path(settings.data).expanduser()
        if data.exists() or settings.data.startswith((".", "/", "~")):
            load_documents(settings.data)
    claim_output(args.out, force=args.force, model=resolve_model_path(args.model))
    backend = open_backend(BackendChoice().for_stage("train"), ModelSource(args.model))
    spec = spec_of(backend.model)
    if args.factors is not None:
        scaling = load_scaling(args.factors, spec, args.target_length, args.method)
    else:
        scaling = extender.rescale(spec, args.target_length)
    result = train_model(backend.model, backend.tokenizer, scaling, settings, out_dir=args.out,
                         layout=extender.training_layout())
    first, last = result.losses[0][1], result.losses[-1][1]
    print(f"trained {len(result.losses)} steps, {result.tokens} tokens in {result.seconds:.0f} s, "
          f"{result.trainable_parameters} trainable parameters; loss {first:.4f} -> {last:.4f}")
    print(f"model written to {result.out_dir}")
    return 0


def interrupted(args: argparse.Namespace) -> str:
    """The SIGINT line: the resumable checkpoint --out holds, or that it holds none."""
    import json

    from ropebench.training.trainer import PROGRESS, resumable_checkpoint

    state = resumable_checkpoint(args.out) if args.out.is_dir() else None
    if state is None:
        return ("interrupted before any checkpoint was written; nothing resumable was saved, so a "
                "re-run starts over (checkpoints come every train.save_every steps)")
    step = json.loads((state / PROGRESS).read_text()).get("step")
    return f"interrupted; the checkpoint of step {step} in {state} is saved, re-run to resume"

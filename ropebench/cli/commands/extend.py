"""`ropebench extend MODEL --method NAME --target-length N --out DIR`: apply a method, save the model.

The output is a plain HF model directory: its config expresses the scaling in transformers'
`rope_parameters`, so `AutoModelForCausalLM.from_pretrained(DIR)` gives the extended model
without ropebench. `--factors FILE` applies searched factors (from `ropebench search`) instead of
the method's analytic ones. Weights keep the dtype of the source model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ropebench.cli.commands.arguments import add_set_option
from ropebench.run.overrides import PARAMS

TAKES = (PARAMS,)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="HF model directory, hub id, or `reference`")
    parser.add_argument(
        "--method",
        default=None,
        help="extender name (see `ropebench list`); optional with --factors",
    )
    parser.add_argument(
        "--target-length",
        type=int,
        default=None,
        help="target context length (optional with a --factors file that has one)",
    )
    add_set_option(parser, TAKES)
    parser.add_argument(
        "--factors",
        type=Path,
        default=None,
        help="factors file: a JSON from `ropebench search`/`extend`, a HF config.json with longrope scaling, or a LongRoPE CSV (instead of analytic factors)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output HF model directory")
    parser.add_argument("--force", action="store_true",
                        help="--out holds files ropebench did not write: move them into "
                             "OUT/set-aside-<time>/ (never deleted) instead of stopping")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow custom model code from a hub repository (off by default)",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from ropebench.bounded import check_factors_file
    from ropebench.errors import RopebenchError
    from ropebench.io import FolderLock
    from ropebench.methods import get_extender, load_scaling
    from ropebench.model.export import save_extended
    from ropebench.model.load import load_config_dict, load_model, resolve_model_path
    from ropebench.model.patch import spec_of
    from ropebench.outdir import claim_output
    from ropebench.rope.attention import engine_refusal
    from ropebench.rope.layout import layer_groups, long_range_parameters
    from ropebench.rope.math import scale_of
    from ropebench.rope.spec import spec_from_config_dict
    from ropebench.run.overrides import parse_set
    from ropebench.settings import MAX_TOKENS

    params = parse_set(args.overrides, TAKES, "extend").params
    if args.method is None and args.factors is None:
        raise RopebenchError("give --method NAME or --factors FILE (see `ropebench list`)")
    if args.factors is None and args.target_length is None:
        raise RopebenchError("give --target-length N (the context length to extend to)")
    if args.target_length is not None and not 1 <= args.target_length <= MAX_TOKENS:
        raise RopebenchError(f"--target-length must be from 1 to {MAX_TOKENS}, got "
                             f"{args.target_length}")
    if params and args.factors is not None:
        raise RopebenchError("params.KEY settings configure the analytic --method; a --factors "
                             "file fixes the scaling itself, so drop one of them")
    # Everything that can be checked from config.json is checked before the weights load.
    extender = get_extender(args.method, params) if args.method else None
    config = load_config_dict(args.model)
    spec = spec_from_config_dict(config)
    if args.factors is not None:
        check_factors_file(args.factors)
        scaling = load_scaling(args.factors, spec, args.target_length, args.method)
    else:
        scaling = extender.rescale(spec, args.target_length)
    if scaling.extra.get("attention"):
        raise RopebenchError(engine_refusal(scaling.extra["attention"], "vanilla transformers"))

    claim_output(args.out, force=args.force, model=resolve_model_path(args.model))
    dtype_name = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    dtype = getattr(torch, dtype_name, None)
    if not isinstance(dtype, torch.dtype):
        raise RopebenchError(f"the model config's dtype {dtype_name!r} is no torch dtype; write "
                             "e.g. \"dtype\": \"bfloat16\" in config.json")
    model, tokenizer = load_model(
        args.model, device="cpu", dtype=dtype, trust_remote_code=args.trust_remote_code,
        need_tokenizer=False,  # RoPE needs no tokenizer; its files are copied when present
    )
    if spec_of(model) != spec:
        raise RopebenchError(
            f"{args.model}: the loaded model's RoPE differs from its config.json; check the directory"
        )
    with FolderLock(args.out, "--out"):  # two extends into one folder: the second stops
        out = save_extended(model, tokenizer, scaling, args.out)
    params = long_range_parameters(model.config)
    print(
        f"{scaling.method}: window {spec.window} -> {scaling.target_length} "
        f"(s = {scale_of(spec, scaling.target_length):g}), m = {scaling.attention_factor:.6f}, "
        f"factors {min(scaling.long_factor):.4g}..{max(scaling.long_factor):.4g}"
    )
    kept = [g.name for g in layer_groups(model.config, spec) if g.base and not g.extended]
    print(f"saved to {out} (rope_type {params['rope_type']}, rope_theta {params['rope_theta']:g}"
          + (f"; {', '.join(kept)} layers keep their RoPE" if kept else "") + ")")
    return 0

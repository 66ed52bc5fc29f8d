"""`ropebench train MODEL --method NAME --target-length N --out DIR`: fine-tune with a method's RoPE.

Every extender trains the same way (plain rows of the target length, its rescaled RoPE), except
LongRoPE2, which uses mixed context window training unless `--no-mixed`. `--factors FILE` trains
with searched factors instead of the method's analytic ones. Re-running resumes from the last
checkpoint in DIR. For several GPUs: `accelerate launch -m ropebench train ...`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ropebench.cli.commands.arguments import add_set_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ropebench.training.trainer import TrainSettings

    d = TrainSettings()
    parser.add_argument("model", help="HF model directory, hub id, or `reference`")
    parser.add_argument("--method", required=True, help="extender name (see `ropebench list`)")
    parser.add_argument("--target-length", type=int, required=True, help="row length L in tokens")
    parser.add_argument("--out", type=Path, required=True, help="output HF model directory")
    parser.add_argument("--factors", type=Path, default=None,
                        help="factors JSON (e.g. from `ropebench search`) instead of analytic factors")
    add_set_option(parser, "extender setting, e.g. --set critical_index=20 (repeatable)")
    parser.add_argument("--data", default=d.data,
                        help="`reference`, a folder/file of .txt/.jsonl, or an HF dataset name[:config][@split]")
    parser.add_argument("--steps", type=int, default=d.steps)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--grad-accum", type=int, default=d.grad_accum)
    parser.add_argument("--max-grad-norm", type=float, default=d.max_grad_norm)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--no-mixed", dest="mixed", action="store_false",
                        help="LongRoPE2: plain fine-tuning instead of mixed context window training")
    parser.add_argument("--per-document-mask-long", action="store_true",
                        help="mixed training: restart positions and mask per document in long rows too")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--log-every", type=int, default=d.log_every)
    parser.add_argument("--save-every", type=int, default=d.save_every,
                        help="steps between resumable checkpoints (0: none)")


def run(args: argparse.Namespace) -> int:
    from ropebench.errors import RopebenchError
    from ropebench.methods import get_extender, load_scaling
    from ropebench.model.load import load_config_dict, load_model
    from ropebench.model.patch import spec_of
    from ropebench.rope.spec import RopeSpec
    from ropebench.settings import field_names, parse_overrides, parse_settings
    from ropebench.training.data import load_documents
    from ropebench.training.trainer import TrainSettings, train_model

    overrides = parse_overrides(args.overrides)
    # The layout flags belong to the methods that train in mixed windows (LongRoPE2).
    layout_fields = set(field_names(get_extender(args.method).config_class))
    if not args.mixed and "mixed" in layout_fields:
        overrides["mixed"] = "false"
    if args.per_document_mask_long and "per_document_mask_long" in layout_fields:
        overrides["per_document_mask_long"] = "true"
    settings = parse_settings(TrainSettings, {
        "steps": args.steps, "lr": args.lr, "warmup_steps": args.warmup_steps,
        "batch_size": args.batch_size, "grad_accum": args.grad_accum,
        "max_grad_norm": args.max_grad_norm, "weight_decay": args.weight_decay, "seed": args.seed,
        "data": args.data, "gradient_checkpointing": args.gradient_checkpointing,
        "log_every": args.log_every, "save_every": args.save_every,
    }, where="train")
    extender = get_extender(args.method, overrides)
    if args.out.exists() and not args.out.is_dir():
        raise RopebenchError(f"--out {args.out} is a file; give a folder for the trained model")
    # The method, target and factors are checked against config.json before any weights load.
    config_spec = RopeSpec.from_config(load_config_dict(args.model))
    if args.factors is not None:
        load_scaling(args.factors, config_spec, args.target_length)
    else:
        extender.rescale(config_spec, args.target_length)
    if settings.data != "reference":  # a missing or empty local source fails now
        data = Path(settings.data).expanduser()
        if data.exists() or settings.data.startswith((".", "/", "~")):
            load_documents(settings.data)
    model, tokenizer = load_model(args.model)
    spec = spec_of(model)
    if args.factors is not None:
        scaling = load_scaling(args.factors, spec, args.target_length)
    else:
        scaling = extender.rescale(spec, args.target_length)
    result = train_model(model, tokenizer, scaling, settings, out_dir=args.out,
                         layout=extender.training_layout())
    first, last = result.losses[0][1], result.losses[-1][1]
    print(f"trained {len(result.losses)} steps, {result.tokens} tokens in {result.seconds:.0f} s; "
          f"loss {first:.4f} -> {last:.4f}")
    print(f"model written to {result.out_dir}")
    return 0

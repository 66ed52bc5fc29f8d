"""Training throughput of `ropebench train` against a plain transformers `Trainer`, same work.

Both sides fine-tune a fresh copy of the reference model with the same extender scaling on the
same packed rows (ropebench's plain packing of the reference corpus, rows of the target length),
with the same optimizer settings: AdamW, linear warm-up then cosine decay to `lr * min_lr_ratio`,
gradient clipping at 1.0, float32 on CPU (bf16 on CUDA, as `ropebench train` does), no
checkpoints. `ropebench train` runs through its own command line with its default logging; the
Trainer, logging off, gets the rows, built once here, as a map-style dataset read in order.

Each side runs in a fresh process. A global optimizer hook stamps the end of every optimizer
step; the first `--untimed-steps` steps warm up kernels, allocator and optimizer state, and the
time from the end of the last of them to the end of the final step is measured identically on
both sides. That window contains everything the loops do between optimizer steps (data,
forward, backward, clipping, logging, progress bar). Tokens are target tokens (labels that are
predicted), as `ropebench train` counts them. The first losses of the two sides agree when both
really see the same model, RoPE and rows. Each side runs `--repeats` times, the order alternating,
and its fastest run counts, so that other work on the machine weighs less.

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_throughput.py --method yarn --target-length 2048
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIDES = ("ropebench", "trainer")


def stamp_optimizer_steps() -> list[float]:
    """Record the wall time at the end of every optimizer step taken in this process."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    stamps: list[float] = []

    def hook(optimizer, args, kwargs) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # the step's kernels must be done before we read the clock
        stamps.append(time.perf_counter())

    register_optimizer_step_post_hook(hook)
    return stamps


def build_rows(args: argparse.Namespace, path: Path) -> list[int]:
    """Save the rows both sides train on to `path`; return the target tokens of each step."""
    import itertools

    import torch

    from ropebench.methods import get_extender
    from ropebench.model.load import load_model
    from ropebench.model.patch import spec_of
    from ropebench.training.data import IGNORE, collate, load_documents, rows

    model, tokenizer = load_model("reference")
    scaling = get_extender(args.method).rescale(spec_of(model), args.target_length)
    # The same call, settings and seed as ropebench's plain training loop makes.
    stream = rows(
        tokenizer,
        load_documents("reference"),
        args.target_length,
        original_length=scaling.original_length,
        mixed=False,
        seed=args.seed,
    )
    rows_per_step = args.batch_size * args.grad_accum
    batch = collate(list(itertools.islice(stream, total_steps(args) * rows_per_step)))
    torch.save({"input_ids": batch["input_ids"], "labels": batch["labels"]}, path)
    targets = (batch["labels"] != IGNORE).sum(dim=1).view(-1, rows_per_step).sum(dim=1)
    return targets.tolist()


def total_steps(args: argparse.Namespace) -> int:
    return args.untimed_steps + args.steps


def run_ropebench(args: argparse.Namespace, work: Path) -> dict:
    """`ropebench train reference ...` in this process; losses from its own training log."""
    from ropebench.cli.main import main as ropebench_main
    from ropebench.methods import get_extender
    from ropebench.settings import field_names

    stamps = stamp_optimizer_steps()
    out = work / "ropebench-out"
    # Plain rows for every method: a method that trains in mixed windows is told not to.
    layout = field_names(get_extender(args.method).config_class)
    plain = ["--set", "params.mixed=false"] if "mixed" in layout else []
    code = ropebench_main(
        [
            "train",
            "reference",
            "--method",
            args.method,
            "--target-length",
            str(args.target_length),
            "--out",
            str(out),
            *plain,
            "--set",
            f"train.steps={total_steps(args)}",
            "--set",
            f"train.lr={args.lr}",
            "--set",
            f"train.warmup_steps={args.lr_warmup_steps}",
            "--set",
            f"train.batch_size={args.batch_size}",
            "--set",
            f"train.grad_accum={args.grad_accum}",
            "--set",
            f"train.seed={args.seed}",
            "--set",
            "train.save_every=0",
        ]
    )
    if code:
        raise SystemExit(f"ropebench train exited with {code}")
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    tokens = json.loads((out / "train_result.json").read_text())["tokens"]
    return {
        "stamps": stamps,
        "first_loss": log[0]["loss"],
        "last_loss": log[-1]["loss"],
        "tokens_all_steps": tokens,
    }


def run_trainer(args: argparse.Namespace, work: Path) -> dict:
    """A plain `Trainer` on the saved rows, with the same model, RoPE and optimizer settings."""
    import torch
    from transformers import Trainer, TrainingArguments

    from ropebench.methods import get_extender
    from ropebench.model.load import load_model
    from ropebench.model.patch import apply_scaling, spec_of
    from ropebench.training.trainer import TrainSettings

    class Rows(torch.utils.data.Dataset):
        def __init__(self, data: dict[str, torch.Tensor]):
            self.data = data

        def __len__(self) -> int:
            return len(self.data["input_ids"])

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": self.data["input_ids"][i], "labels": self.data["labels"][i]}

    class LossTrainer(Trainer):
        """Keeps each micro-batch's loss (detached, no sync) to report the first and last step."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.micro_losses: list[torch.Tensor] = []

        def training_step(self, *a, **kw) -> torch.Tensor:
            loss = super().training_step(*a, **kw)
            self.micro_losses.append(loss)
            return loss

    defaults = TrainSettings()
    model, _ = load_model("reference")
    apply_scaling(model, get_extender(args.method).rescale(spec_of(model), args.target_length))
    model.config.use_cache = False
    training_args = TrainingArguments(
        output_dir=str(work / "trainer-out"),
        max_steps=total_steps(args),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.lr,
        warmup_steps=args.lr_warmup_steps,
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr_rate": defaults.min_lr_ratio},
        optim="adamw_torch",  # ropebench's plain torch.optim.AdamW, not the fused default
        adam_beta1=defaults.betas[0],
        adam_beta2=defaults.betas[1],
        weight_decay=defaults.weight_decay,
        max_grad_norm=defaults.max_grad_norm,
        bf16=torch.cuda.is_available(),
        train_sampling_strategy="sequential",  # the rows in ropebench's order
        save_strategy="no",
        logging_strategy="no",
        report_to=[],
        seed=args.seed,
    )
    stamps = stamp_optimizer_steps()
    trainer = LossTrainer(
        model=model, args=training_args, train_dataset=Rows(torch.load(work / "rows.pt"))
    )
    trainer.train()
    # Each micro-batch loss comes back scaled for accumulation: a step's mean loss is their sum.
    steps = torch.stack(trainer.micro_losses).view(-1, args.grad_accum).sum(dim=1)
    return {"stamps": stamps, "first_loss": float(steps[0]), "last_loss": float(steps[-1])}


def measure(side: str, args: argparse.Namespace, work: Path, step_tokens: list[int]) -> dict:
    """One side in a fresh process: seconds of the timed steps and its first and last loss."""
    out = subprocess.run(
        [sys.executable, __file__, *sys.argv[1:], "--child", side, "--work", str(work)],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"{side} side failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    stamps = result["stamps"]
    if len(stamps) != total_steps(args):
        raise SystemExit(f"{side}: {len(stamps)} optimizer steps, expected {total_steps(args)}")
    if "tokens_all_steps" in result and result["tokens_all_steps"] != sum(step_tokens):
        raise SystemExit(f"{side} trained on other rows than the ones built here")
    result["seconds"] = stamps[-1] - stamps[args.untimed_steps - 1]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="yarn", help="extender whose scaling both sides use")
    parser.add_argument("--target-length", type=int, default=2048, help="row length in tokens")
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    parser.add_argument(
        "--untimed-steps",
        type=int,
        default=2,
        help="optimizer steps before the timed ones (warm-up, not counted)",
    )
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--grad-accum", type=int, default=1)
    # Higher than the fine-tuning default so a handful of steps visibly moves the loss.
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-warmup-steps", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="runs per side, in alternating order; the fastest of each counts",
    )
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.untimed_steps, args.steps, args.repeats) < 1:
        parser.error("--untimed-steps, --steps and --repeats must be >= 1")
    if args.child:
        run = run_ropebench if args.child == "ropebench" else run_trainer
        print(json.dumps(run(args, args.work)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        step_tokens = build_rows(args, work / "rows.pt")
        tokens = sum(step_tokens[args.untimed_steps :])
        print(
            f"{args.method} at {args.target_length} tokens, {args.batch_size} x {args.grad_accum} "
            f"rows per step, {args.steps} timed steps after {args.untimed_steps} untimed"
        )
        print(
            f"{'side':10s} {'run':>3s} {'tokens':>8s} {'seconds':>8s} {'tokens/s':>9s} "
            f"{'first loss':>10s} {'last loss':>10s}"
        )
        best = {side: 0.0 for side in SIDES}
        for repeat in range(args.repeats):
            # Alternate which side goes first, so a drift in machine load hits both alike.
            for side in SIDES if repeat % 2 == 0 else SIDES[::-1]:
                result = measure(side, args, work, step_tokens)
                speed = tokens / result["seconds"]
                best[side] = max(best[side], speed)
                print(
                    f"{side:10s} {repeat + 1:3d} {tokens:8d} {result['seconds']:8.2f} {speed:9.1f} "
                    f"{result['first_loss']:10.4f} {result['last_loss']:10.4f}"
                )
    print(f"best tokens/s: ropebench {best['ropebench']:.1f}, trainer {best['trainer']:.1f}")
    print(f"ratio: {best['ropebench'] / best['trainer']:.3f}")


if __name__ == "__main__":
    main()

"""Fine-tune a model at the target length with an extender's RoPE, through accelerate.

The same loop runs on one CPU (float32), one GPU (bf16 autocast) or many GPUs (`accelerate launch`
with an FSDP or DeepSpeed config; see docs/distributed-training.md). Two data layouts:
- plain (every baseline): documents concatenated into rows of the target length, one RoPE;
- mixed (LongRoPE2's layout): short-document rows keep the original RoPE with per-document attention, long
  rows use the rescaled RoPE (`ropebench.model.mixed`).

AdamW, linear warm-up then cosine decay, gradient clipping and accumulation. Every `save_every`
steps the full state goes to `out_dir/checkpoint/` so an interrupted run resumes from there; the
loss goes to `out_dir/train_log.jsonl`; the result is an HF model directory in `out_dir`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ropebench.errors import RopebenchError
from ropebench.methods.base import TrainingLayout
from ropebench.rope.scaling import RopeScaling


@dataclass
class TrainSettings:
    steps: int = 100  # optimizer steps
    lr: float = 2e-5  # peak learning rate (LongRoPE2 paper)
    warmup_steps: int = 40  # nnscaler's LongRoPE2 example
    batch_size: int = 1  # rows per micro-batch and process
    grad_accum: int = 1  # micro-batches per optimizer step
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    seed: int = 0
    data: str = "reference"  # see ropebench.training.data.load_documents
    gradient_checkpointing: bool = False
    log_every: int = 10
    save_every: int = 50  # steps between resumable checkpoints (0: none)
    min_lr_ratio: float = 0.1  # the cosine decays to lr * min_lr_ratio

    def __post_init__(self) -> None:
        if min(self.steps, self.batch_size, self.grad_accum, self.log_every) < 1:
            raise RopebenchError("steps, batch_size, grad_accum and log_every must all be >= 1")
        if self.lr <= 0 or self.warmup_steps < 0 or self.save_every < 0:
            raise RopebenchError("lr must be > 0, warmup_steps and save_every >= 0")


@dataclass
class TrainResult:
    out_dir: Path
    losses: list[tuple[int, float]]  # (step, mean loss of that optimizer step)
    tokens: int  # target tokens trained on, all processes together
    seconds: float


def learning_rate(step: int, settings: TrainSettings) -> float:
    """Linear warm-up to `lr`, then a cosine down to `lr * min_lr_ratio` at the last step."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    span = max(settings.steps - settings.warmup_steps, 1)
    progress = min((step - settings.warmup_steps) / span, 1.0)
    floor = settings.lr * settings.min_lr_ratio
    return floor + 0.5 * (settings.lr - floor) * (1 + math.cos(math.pi * progress))


def _model_inputs(
    batch: dict[str, torch.Tensor], mixed: bool, attention: str, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Forward arguments for one micro-batch of packed rows (each tensor (B, T))."""
    from ropebench.model.mixed import packed_causal_mask, sequence_ids

    inputs = {k: batch[k] for k in ("input_ids", "position_ids", "labels")}
    if not mixed:
        return inputs  # rows are single sequences: the model's own causal mask
    if attention.startswith("flash_attention"):
        # flash-attn varlen: one flattened row (1, B*T); transformers cuts it into sequences where
        # positions restart, and the mixed rotary module applies the same rule.
        return {k: v.reshape(1, -1) for k, v in inputs.items()}
    if (sequence_ids(batch["position_ids"])[:, -1] == 0).all():
        return inputs  # only whole-row sequences (long rows without padding): plain causal attention
    # sdpa takes a boolean mask; eager adds the mask to its scores.
    mask_dtype = None if attention == "sdpa" else dtype
    inputs["attention_mask"] = packed_causal_mask(batch["position_ids"], mask_dtype)  # (B, 1, T, T)
    return inputs


def train_model(
    model,
    tokenizer,
    scaling: RopeScaling,
    settings: TrainSettings,
    *,
    out_dir: Path,
    layout: TrainingLayout | None = None,
) -> TrainResult:
    """Train `model` in place at `scaling.target_length`, then save it to `out_dir` (HF format).

    `layout` comes from the method (`Extender.training_layout()`): plain rows by default."""
    layout = layout or TrainingLayout()
    mixed = layout.mixed
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from ropebench.model.export import save_extended
    from ropebench.model.mixed import install_mixed_rotary
    from ropebench.model.patch import apply_scaling
    from ropebench.training.data import IGNORE, collate, load_documents, rows

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_dir, log_path = out_dir / "checkpoint", out_dir / "train_log.jsonl"
    accelerator = Accelerator(
        gradient_accumulation_steps=settings.grad_accum,
        mixed_precision="bf16" if torch.cuda.is_available() else "no",
        # Without a GPU accelerate runs torchrun's processes as independent single-process
        # runs unless told it is on CPU; then they form one gloo group (DDP).
        cpu=not torch.cuda.is_available(),
    )
    torch.manual_seed(settings.seed)

    # The RoPE to train with. Mixed training swaps in the per-sequence rotary module; plain
    # training keeps transformers' own (a switching scaling picks long factors: rows are L long).
    apply_scaling(model, scaling)
    if mixed:
        install_mixed_rotary(model, scaling)
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model.train()
    attention = getattr(model.config, "_attn_implementation", None) or "eager"
    dtype = next(model.parameters()).dtype

    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.lr,
        betas=settings.betas,
    )
    model, optimizer = accelerator.prepare(model, optimizer)

    # Resume: weights and optimizer from the last checkpoint, and the data stream fast-forwarded.
    start_step, tokens, seconds = 0, 0, 0.0
    losses: list[tuple[int, float]] = []
    if (state_dir / "progress.json").is_file():
        accelerator.load_state(str(state_dir))
        progress = json.loads((state_dir / "progress.json").read_text())
        start_step, tokens, seconds = progress["step"], progress["tokens"], progress["seconds"]
        losses = [tuple(x) for x in progress["losses"]]
        accelerator.print(f"resuming from step {start_step} ({state_dir})")
    if accelerator.is_main_process:
        # The log keeps exactly the steps the weights have seen.
        kept = [line for line in _read_log(log_path) if line["step"] <= start_step]
        log_path.write_text("".join(json.dumps(line) + "\n" for line in kept))

    stream = rows(
        tokenizer,
        load_documents(settings.data),
        scaling.target_length,
        original_length=scaling.original_length,
        mixed=mixed,
        per_document_mask_long=layout.per_document_mask_long,
        seed=settings.seed,
    )
    # Each process reads its own rows: every num_processes-th row from its index.
    stream = itertools.islice(stream, accelerator.process_index, None, accelerator.num_processes)
    rows_per_step = settings.batch_size * settings.grad_accum
    stream = itertools.islice(stream, start_step * rows_per_step, None)

    bar = tqdm(range(start_step, settings.steps), initial=start_step, total=settings.steps,
               desc=f"train {scaling.method}{' mixed' if mixed else ''}",
               disable=not accelerator.is_local_main_process)
    for step in bar:
        start = time.perf_counter()
        lr = learning_rate(step, settings)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = torch.zeros((), device=accelerator.device)
        step_tokens = 0
        long_rows = 0
        for _ in range(settings.grad_accum):
            batch = collate([next(stream) for _ in range(settings.batch_size)])
            long_rows += int(batch["long"].sum())
            step_tokens += int((batch["labels"] != IGNORE).sum())
            inputs = {k: v.to(accelerator.device)
                      for k, v in _model_inputs(batch, mixed, attention, dtype).items()}
            with accelerator.accumulate(model):
                loss = model(**inputs, use_cache=False).loss  # mean NLL of this micro-batch's targets
                accelerator.backward(loss)  # divided by grad_accum inside accelerate
                if accelerator.sync_gradients and settings.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
                optimizer.step()  # a no-op until the last micro-batch of the step
                optimizer.zero_grad(set_to_none=True)
            step_loss += loss.detach() / settings.grad_accum

        mean_loss = float(accelerator.reduce(step_loss, reduction="mean"))
        tokens += step_tokens * accelerator.num_processes
        seconds += time.perf_counter() - start
        losses.append((step + 1, mean_loss))
        bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}")
        if accelerator.is_main_process and ((step + 1) % settings.log_every == 0 or step == start_step
                                            or step + 1 == settings.steps):
            record = {"step": step + 1, "loss": round(mean_loss, 6), "lr": lr, "tokens": tokens,
                      "long_rows": long_rows, "rows": rows_per_step, "seconds": round(seconds, 3)}
            with log_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        if settings.save_every and (step + 1) % settings.save_every == 0 and step + 1 < settings.steps:
            accelerator.save_state(str(state_dir))
            if accelerator.is_main_process:
                progress = {"step": step + 1, "tokens": tokens, "seconds": seconds, "losses": losses}
                (state_dir / "progress.json").write_text(json.dumps(progress))
    bar.close()

    # Back to a plain HF model: transformers' rotary module for this scaling, inference mode.
    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(model)
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_disable()
    model.config.use_cache = True
    model.eval()
    apply_scaling(model, scaling)
    if accelerator.is_main_process:
        save_extended(model, tokenizer, scaling, out_dir)
        record = {"method": scaling.method, "mixed": mixed, "settings": dataclasses.asdict(settings),
                  "tokens": tokens, "seconds": round(seconds, 3), "final_loss": losses[-1][1]}
        (out_dir / "train_result.json").write_text(json.dumps(record, indent=2))
        shutil.rmtree(state_dir, ignore_errors=True)  # finished: nothing left to resume
    return TrainResult(out_dir=out_dir, losses=losses, tokens=tokens, seconds=seconds)


def _read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

"""Fine-tune a model at the target length with an extender's RoPE, through accelerate.

The same loop runs on one CPU (float32), one GPU (bf16 autocast) or many GPUs (`accelerate launch`
with an FSDP or DeepSpeed config; see docs/distributed-training.md). Two data layouts:
- plain (every baseline): documents concatenated into rows of the target length, one RoPE;
- mixed (LongRoPE2's layout): short-document rows keep the original RoPE with per-document attention, long
  rows use the rescaled RoPE (`ropebench.model.mixed`).

Two cheaper arms (docs/training-arms.md): PoSE position ids on plain rows of a shorter window
(`positions: pose`), and LoRA adapters on either layout, merged before export (`lora:`).

AdamW, linear warm-up then cosine decay, gradient clipping and accumulation. Every `save_every`
steps the full state goes to `out_dir/checkpoint/` so an interrupted run resumes from there; the
loss goes to `out_dir/train_log.jsonl`; the result is an HF model directory in `out_dir`.

A checkpoint is written whole into `checkpoint.tmp/` (weights, optimizer, then `progress.json`
with the run's fingerprint), then swapped in by renames, so a kill at any moment leaves the old
checkpoint or the new one, never a mix. Resuming checks the fingerprint (method and its scaling,
settings, the training documents, the base model's weights and tokenizer): a checkpoint of
another run is refused with a message, never resumed. `out_dir` is locked while training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ropebench.errors import RopebenchError
from ropebench.io import FolderLock, JsonlWriter, read_jsonl, write_json_atomic, write_text_atomic
from ropebench.methods.base import TrainingLayout
from ropebench.rope.scaling import RopeScaling
from ropebench.settings import MAX_SEED, differences, setting, validate
from ropebench.training.lora import LoraSettings


@dataclass
class TrainSettings:
    steps: int = setting(100, min=1)  # optimizer steps
    lr: float = setting(2e-5, gt=0, max=1.0)  # peak learning rate (LongRoPE2 paper)
    warmup_steps: int = setting(40, min=0)  # nnscaler's LongRoPE2 example
    batch_size: int = setting(1, min=1)  # rows per micro-batch and process
    grad_accum: int = setting(1, min=1)  # micro-batches per optimizer step
    max_grad_norm: float = setting(1.0, min=0)  # 0: no clipping
    weight_decay: float = setting(0.0, min=0)
    betas: tuple[float, float] = setting((0.9, 0.95), min=0, max=0.999999)
    seed: int = setting(0, min=0, max=MAX_SEED)
    data: str = "reference"  # see ropebench.training.data.load_documents
    gradient_checkpointing: bool = False
    log_every: int = setting(10, min=1)
    save_every: int = setting(50, min=0)  # steps between resumable checkpoints (0: none)
    min_lr_ratio: float = setting(0.1, min=0, max=1)  # the cosine decays to lr * min_lr_ratio
    # Mixed context window training: the share of target tokens in long rows (rescaled RoPE);
    # the rest are short rows (original RoPE). The paper's data is about 30/70 short/long.
    # Plain training has long rows only, whatever this says.
    long_share: float = setting(0.7, min=0, max=1)
    # Cheaper arms (docs/training-arms.md): PoSE position ids, LoRA adapters.
    positions: str = setting("plain", choices=("plain", "pose"))  # pose: rows of pose_window
    pose_window: int | None = setting(None, min=2)  # PoSE row length; None: the pretrained window
    pose_chunks: int = setting(2, min=1)  # pieces a PoSE row is cut into
    lora: LoraSettings | None = None  # e.g. {r: 8, alpha: 16}; None: every weight trains

    def __post_init__(self) -> None:
        validate(self, "train")


@dataclass
class TrainResult:
    out_dir: Path
    losses: list[tuple[int, float]]  # (step, mean loss of that optimizer step)
    tokens: int  # target tokens trained on, all processes together
    seconds: float
    tokens_short: int = 0  # of those, in short rows (original RoPE; mixed training only)
    tokens_long: int = 0  # in long rows (the rescaled RoPE)
    trainable_parameters: int = 0  # parameters the optimizer updated (LoRA: adapters and extras)


def row_length(settings: TrainSettings, window: int, target: int) -> int:
    """Tokens per training row: the target, or PoSE's shorter window (default: pretrained)."""
    if settings.positions != "pose":
        return target
    return settings.pose_window or window


def check_arms(settings: TrainSettings, extender, window: int, target: int) -> None:
    """The training arms' settings against the method, its pretrained window and the target
    (no weights needed): one line for each bad combination."""
    if not getattr(extender, "trainable", True):
        raise RopebenchError(
            f"{extender.name} changes attention at inference only and cannot be trained; "
            "drop the training (train stage or `ropebench train`) for this method"
        )
    _check_pose(settings, window, target, extender.training_layout().mixed)


def _check_pose(settings: TrainSettings, window: int, target: int, mixed: bool) -> None:
    if settings.positions == "pose":
        from ropebench.training.pose import check_pose

        check_pose(row_length(settings, window, target), target, settings.pose_chunks, mixed)


CHECKPOINT, CHECKPOINT_TMP, CHECKPOINT_OLD = "checkpoint", "checkpoint.tmp", "checkpoint.old"
PROGRESS = "progress.json"
# Settings that change how a run is watched or saved, not what it trains.
_NOT_FINGERPRINTED = ("log_every", "save_every", "gradient_checkpointing")


def training_fingerprint(model, tokenizer, scaling: RopeScaling, settings: TrainSettings,
                         layout: TrainingLayout, documents: list[str]) -> dict[str, Any]:
    """What a training checkpoint must agree on to be resumed."""
    from ropebench.model.identity import tokenizer_fingerprint, weights_fingerprint

    data = hashlib.sha256()
    for doc in documents:
        data.update(hashlib.sha256(doc.encode("utf-8", errors="replace")).digest())
    return {
        "scaling": scaling.to_dict(),
        "layout": dataclasses.asdict(layout),
        "settings": {k: v for k, v in dataclasses.asdict(settings).items()
                     if k not in _NOT_FINGERPRINTED},
        "documents_sha256": data.hexdigest(),
        "weights_sha256": weights_fingerprint(model),
        "tokenizer_sha256": tokenizer_fingerprint(tokenizer),
    }


def resumable_checkpoint(out_dir: Path) -> Path | None:
    """The complete checkpoint in `out_dir`, if any (`checkpoint/`, or `checkpoint.old/` when a kill
    came between the two renames of a swap). A half-written `checkpoint.tmp/` never counts."""
    for name in (CHECKPOINT, CHECKPOINT_OLD):
        folder = Path(out_dir) / name
        if (folder / PROGRESS).is_file():
            return folder
    return None


def _swap_in(out_dir: Path) -> None:
    """checkpoint.tmp -> checkpoint, keeping the previous one until the new one is in place."""
    current, tmp, old = out_dir / CHECKPOINT, out_dir / CHECKPOINT_TMP, out_dir / CHECKPOINT_OLD
    shutil.rmtree(old, ignore_errors=True)
    if current.exists():
        os.replace(current, old)
    os.replace(tmp, current)
    shutil.rmtree(old, ignore_errors=True)


def warmup_cosine(step: int, *, peak: float, floor: float, warmup_steps: int,
                  total_steps: int) -> float:
    """Linear warm-up to `peak` over `warmup_steps`, then a cosine down to `floor` at the last
    step (the schedule of every ropebench training loop, the reference model's included)."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * progress))


def learning_rate(step: int, settings: TrainSettings) -> float:
    """`warmup_cosine` from `lr` down to `lr * min_lr_ratio`."""
    return warmup_cosine(step, peak=settings.lr, floor=settings.lr * settings.min_lr_ratio,
                         warmup_steps=settings.warmup_steps, total_steps=settings.steps)


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
    validate(settings, "train")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RopebenchError(f"--out {out_dir} is a file; give a folder for the trained model")
    out_dir.mkdir(parents=True, exist_ok=True)
    # One lock per run: under `accelerate launch` the main process holds it for all ranks.
    main_process = int(os.environ.get("RANK", "0")) == 0
    with FolderLock(out_dir, "--out") if main_process else contextlib.nullcontext():
        return _train(model, tokenizer, scaling, settings, out_dir, layout)


def _train(model, tokenizer, scaling, settings, out_dir: Path, layout: TrainingLayout) -> TrainResult:
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    from ropebench.model.export import save_extended
    from ropebench.model.identity import forget_weights_fingerprint
    from ropebench.model.mixed import install_mixed_rotary
    from ropebench.model.patch import apply_scaling
    from ropebench.training.data import IGNORE, collate, load_documents, rows

    mixed = layout.mixed
    _check_pose(settings, scaling.original_length, scaling.target_length, mixed)
    log_path = out_dir / "train_log.jsonl"
    documents = load_documents(settings.data)
    fingerprint = json.loads(json.dumps(
        training_fingerprint(model, tokenizer, scaling, settings, layout, documents), default=str))
    state_dir = resumable_checkpoint(out_dir)
    progress = None
    if state_dir is not None:
        progress = json.loads((state_dir / PROGRESS).read_text())
        if progress.get("fingerprint") != fingerprint:
            changed = differences(progress.get("fingerprint") or {}, fingerprint)
            raise RopebenchError(
                f"{state_dir} was written by another training run "
                f"({'; '.join(changed[:3]) or 'no fingerprint'}); delete {state_dir} to start "
                "over, or give another --out to keep both"
            )
    forget_weights_fingerprint(model)  # training changes the weights from here on
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
    if settings.lora is not None:
        from ropebench.training.lora import attach_lora

        model = attach_lora(model, settings.lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
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
    by_kind = {"short": 0, "long": 0}  # target tokens in short / long rows
    losses: list[tuple[int, float]] = []
    if progress is not None:
        accelerator.load_state(str(state_dir))
        start_step, tokens, seconds = progress["step"], progress["tokens"], progress["seconds"]
        by_kind = dict(progress.get("by_kind", by_kind))
        losses = [tuple(x) for x in progress["losses"]]
        accelerator.print(f"resuming from step {start_step} ({state_dir})")
    if accelerator.is_main_process:
        # The log keeps exactly the steps the weights have seen.
        kept = [line for line in read_jsonl(log_path) if line.get("step", 0) <= start_step]
        write_text_atomic(log_path, "".join(json.dumps(line) + "\n" for line in kept))

    stream = rows(
        tokenizer,
        documents,
        row_length(settings, scaling.original_length, scaling.target_length),
        original_length=scaling.original_length,
        mixed=mixed,
        per_document_mask_long=layout.per_document_mask_long,
        seed=settings.seed,
        long_share=settings.long_share if mixed else None,
    )
    if settings.positions == "pose":
        from ropebench.training.pose import with_pose_positions

        stream = with_pose_positions(stream, scaling.target_length, settings.pose_chunks,
                                     settings.seed)
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
            targets = (batch["labels"] != IGNORE).sum(dim=1)  # [B]
            step_tokens += int(targets.sum())
            by_kind["long"] += int(targets[batch["long"]].sum()) * accelerator.num_processes
            by_kind["short"] += int(targets[~batch["long"]].sum()) * accelerator.num_processes
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
            JsonlWriter(log_path).write(record)
        if step == start_step:
            left = (settings.steps - step - 1) * (time.perf_counter() - start)
            bar.write(f"train {scaling.method}: step {step + 1} took "
                      f"{time.perf_counter() - start:.1f} s; about {left / 60:.1f} min to go")
        if settings.save_every and (step + 1) % settings.save_every == 0 and step + 1 < settings.steps:
            tmp = out_dir / CHECKPOINT_TMP
            if accelerator.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
            accelerator.wait_for_everyone()
            accelerator.save_state(str(tmp))
            if accelerator.is_main_process:
                progress = {"step": step + 1, "tokens": tokens, "seconds": seconds,
                            "by_kind": by_kind, "losses": losses, "fingerprint": fingerprint}
                write_json_atomic(tmp / PROGRESS, progress)  # last: it makes the folder complete
                _swap_in(out_dir)
            accelerator.wait_for_everyone()
    bar.close()

    # Back to a plain HF model: transformers' rotary module for this scaling, inference mode.
    accelerator.wait_for_everyone()
    model = accelerator.unwrap_model(model)
    if settings.lora is not None:
        from ropebench.training.lora import merge_lora

        model = merge_lora(model)  # the export is a plain HF model
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_disable()
    model.config.use_cache = True
    model.eval()
    apply_scaling(model, scaling)
    if accelerator.is_main_process:
        save_extended(model, tokenizer, scaling, out_dir)
        record = {"method": scaling.method, "mixed": mixed, "settings": dataclasses.asdict(settings),
                  "tokens": tokens, "tokens_short": by_kind["short"], "tokens_long": by_kind["long"],
                  "seconds": round(seconds, 3), "final_loss": losses[-1][1],
                  "trainable_parameters": trainable}
        write_json_atomic(out_dir / "train_result.json", record)
        for name in (CHECKPOINT, CHECKPOINT_TMP, CHECKPOINT_OLD):  # finished: nothing to resume
            shutil.rmtree(out_dir / name, ignore_errors=True)
    return TrainResult(out_dir=out_dir, losses=losses, tokens=tokens, seconds=seconds,
                       tokens_short=by_kind["short"], tokens_long=by_kind["long"],
                       trainable_parameters=trainable)


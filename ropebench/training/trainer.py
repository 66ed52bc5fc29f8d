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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ropebench.errors import RopebenchError
from ropebench.io import FolderLock, JsonlWriter, read_jsonl, write_json_atomic, write_text_atomic
from ropebench.methods.base import TrainingLayout
from ropebench.rope.scaling import RopeScaling
from ropebench.settings import MAX_SEED, differences, setting, validate
from ropebench.training.data import IGNORE, PackedRow, collate, load_documents, rows
from ropebench.training.lora import LoraSettings, attach_lora, merge_lora, trainable_parameters
from ropebench.training.pose import check_pose, with_pose_positions


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
        "scaling": scaling.identity(),
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
    """Set up, resume, step until `settings.steps`, export: the whole run, top to bottom."""
    _check_pose(settings, scaling.original_length, scaling.target_length, layout.mixed)
    documents = load_documents(settings.data)
    # JSON values only, so that it compares equal to the copy read back from progress.json.
    fingerprint = json.loads(json.dumps(
        training_fingerprint(model, tokenizer, scaling, settings, layout, documents), default=str))
    checkpoint = _checkpoint_to_resume(out_dir, fingerprint)  # refuses another run's
    trainer = _Trainer.set_up(model, scaling, settings, layout, out_dir, fingerprint)
    trainer.resume(checkpoint)
    stream = trainer.row_stream(tokenizer, documents)
    bar = trainer.progress_bar()
    for step in bar:
        start = time.perf_counter()
        lr, loss, long_rows = trainer.step(step, stream)
        trainer.progress.seconds += time.perf_counter() - start
        trainer.progress.losses.append((step + 1, loss))
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
        trainer.log(step, lr, loss, long_rows)
        if step == trainer.start_step:  # the first step tells how long the run will take
            took = time.perf_counter() - start
            bar.write(f"train {scaling.method}: step {step + 1} took {took:.1f} s; "
                      f"about {(settings.steps - step - 1) * took / 60:.1f} min to go")
        if trainer.checkpoint_due(step):
            trainer.save_checkpoint()
    bar.close()
    trainer.export(tokenizer)
    return trainer.result()


def _checkpoint_to_resume(out_dir: Path, fingerprint: dict[str, Any]) -> tuple[Path, dict] | None:
    """The checkpoint in `out_dir` and its progress record, if it is this run's (None: start
    afresh); one written by another run is refused, never resumed."""
    state_dir = resumable_checkpoint(out_dir)
    if state_dir is None:
        return None
    saved = json.loads((state_dir / PROGRESS).read_text())
    if saved.get("fingerprint") != fingerprint:
        changed = differences(saved.get("fingerprint") or {}, fingerprint)
        raise RopebenchError(
            f"{state_dir} was written by another training run "
            f"({'; '.join(changed[:3]) or 'no fingerprint'}); delete {state_dir} to start "
            "over, or give another --out to keep both"
        )
    return state_dir, saved


@dataclass
class _Progress:
    """How far the run has come; a checkpoint's progress.json holds it (and the fingerprint)."""
    step: int = 0  # optimizer steps done
    tokens: int = 0  # target tokens trained on, all processes together
    seconds: float = 0.0  # time inside steps (set-up, logging and saving left out)
    by_kind: dict[str, int] = dataclasses.field(default_factory=lambda: {"short": 0, "long": 0})
    losses: list[tuple[int, float]] = dataclasses.field(default_factory=list)  # (step, mean loss)

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> _Progress:
        return cls(step=saved["step"], tokens=saved["tokens"], seconds=saved["seconds"],
                   by_kind=dict(saved.get("by_kind", {"short": 0, "long": 0})),
                   losses=[tuple(x) for x in saved["losses"]])


def _accelerator(settings: TrainSettings):
    from accelerate import Accelerator

    return Accelerator(
        gradient_accumulation_steps=settings.grad_accum,
        mixed_precision="bf16" if torch.cuda.is_available() else "no",
        # Without a GPU accelerate runs torchrun's processes as independent single-process
        # runs unless told it is on CPU; then they form one gloo group (DDP).
        cpu=not torch.cuda.is_available(),
    )


def _ready_to_train(model, scaling: RopeScaling, settings: TrainSettings, mixed: bool):
    """`model` with the RoPE to train with, in training mode (wrapped in adapters for LoRA)."""
    from ropebench.model.mixed import install_mixed_rotary
    from ropebench.model.patch import apply_scaling

    # Mixed training swaps in the per-sequence rotary module; plain training keeps transformers'
    # own (a switching scaling picks its long factors: rows are the target length long).
    apply_scaling(model, scaling)
    if mixed:
        install_mixed_rotary(model, scaling)
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    if settings.lora is not None:
        model = attach_lora(model, settings.lora)  # draws the adapters' initial weights
    model.train()
    return model


def _optimizer(model, settings: TrainSettings) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; biases and norms (1-D) get no weight decay."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.lr,
        betas=settings.betas,
    )


@dataclass
class _Trainer:
    """One run's moving parts, set up once; `_train` calls its steps in order."""
    accelerator: Any
    model: Any  # as accelerate prepared it (DDP, FSDP, ... around the model)
    optimizer: torch.optim.Optimizer
    scaling: RopeScaling
    settings: TrainSettings
    layout: TrainingLayout
    out_dir: Path
    fingerprint: dict[str, Any]
    trainable: int  # parameters the optimizer updates
    attention: str  # the model's attention implementation: how mixed rows are masked
    dtype: torch.dtype
    progress: _Progress = dataclasses.field(default_factory=_Progress)
    start_step: int = 0  # the step this process started (or resumed) at

    @classmethod
    def set_up(cls, model, scaling: RopeScaling, settings: TrainSettings, layout: TrainingLayout,
               out_dir: Path, fingerprint: dict[str, Any]) -> _Trainer:
        from ropebench.model.identity import forget_weights_fingerprint

        forget_weights_fingerprint(model)  # training changes the weights from here on
        accelerator = _accelerator(settings)
        torch.manual_seed(settings.seed)  # before LoRA draws its adapters
        model = _ready_to_train(model, scaling, settings, layout.mixed)
        attention = getattr(model.config, "_attn_implementation", None) or "eager"
        trainable, dtype = trainable_parameters(model), next(model.parameters()).dtype
        model, optimizer = accelerator.prepare(model, _optimizer(model, settings))
        return cls(accelerator, model, optimizer, scaling, settings, layout, out_dir, fingerprint,
                   trainable, attention, dtype)

    @property
    def log_path(self) -> Path:
        return self.out_dir / "train_log.jsonl"

    def resume(self, checkpoint: tuple[Path, dict] | None) -> None:
        """Weights, optimizer and rng states and the progress of `checkpoint` (None: a fresh
        start); the log is cut back to the steps the weights have seen."""
        if checkpoint is not None:
            state_dir, saved = checkpoint
            self.accelerator.load_state(str(state_dir))
            self.progress = _Progress.from_saved(saved)
            self.accelerator.print(f"resuming from step {self.progress.step} ({state_dir})")
        self.start_step = self.progress.step
        if self.accelerator.is_main_process:
            kept = [line for line in read_jsonl(self.log_path) if line.get("step", 0) <= self.start_step]
            write_text_atomic(self.log_path, "".join(json.dumps(line) + "\n" for line in kept))

    def row_stream(self, tokenizer, documents: list[str]) -> Iterator[PackedRow]:
        """This process's rows from the start step on: the same rows, in the same order, as a
        run that was never interrupted."""
        settings, scaling, mixed = self.settings, self.scaling, self.layout.mixed
        stream = rows(
            tokenizer,
            documents,
            row_length(settings, scaling.original_length, scaling.target_length),
            original_length=scaling.original_length,
            mixed=mixed,
            per_document_mask_long=self.layout.per_document_mask_long,
            seed=settings.seed,
            long_share=settings.long_share if mixed else None,
        )
        if settings.positions == "pose":
            stream = with_pose_positions(stream, scaling.target_length, settings.pose_chunks,
                                         settings.seed)
        # Each process reads its own rows: every num_processes-th row from its index.
        accelerator = self.accelerator
        stream = itertools.islice(stream, accelerator.process_index, None, accelerator.num_processes)
        rows_per_step = settings.batch_size * settings.grad_accum
        return itertools.islice(stream, self.start_step * rows_per_step, None)  # fast-forward

    def progress_bar(self):
        from tqdm.auto import tqdm

        steps = self.settings.steps
        return tqdm(range(self.start_step, steps), initial=self.start_step, total=steps,
                    desc=f"train {self.scaling.method}{' mixed' if self.layout.mixed else ''}",
                    disable=not self.accelerator.is_local_main_process)

    def step(self, step: int, stream: Iterator[PackedRow]) -> tuple[float, float, int]:
        """One optimizer step over `grad_accum` micro-batches: (lr, mean loss over all
        processes, long rows of this process)."""
        settings, accelerator = self.settings, self.accelerator
        lr = learning_rate(step, settings)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        step_loss = torch.zeros((), device=accelerator.device)  # () this process's mean loss
        step_tokens = long_rows = 0
        for _ in range(settings.grad_accum):
            batch = collate([next(stream) for _ in range(settings.batch_size)])  # (B, T) each
            long_rows += int(batch["long"].sum())
            step_tokens += self._count_targets(batch)
            step_loss += self._micro_step(batch) / settings.grad_accum
        mean_loss = float(accelerator.reduce(step_loss, reduction="mean"))
        self.progress.tokens += step_tokens * accelerator.num_processes
        self.progress.step = step + 1
        return lr, mean_loss, long_rows

    def _count_targets(self, batch: dict[str, torch.Tensor]) -> int:
        """Target tokens of this micro-batch; adds every process's (as many as this one's) to
        the short / long counts."""
        targets = (batch["labels"] != IGNORE).sum(dim=1)  # (B,)
        processes = self.accelerator.num_processes
        self.progress.by_kind["long"] += int(targets[batch["long"]].sum()) * processes
        self.progress.by_kind["short"] += int(targets[~batch["long"]].sum()) * processes
        return int(targets.sum())

    def _micro_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Forward and backward of one micro-batch; the optimizer steps on the last of a step.
        Returns the detached loss, a ()-tensor."""
        accelerator, settings, model = self.accelerator, self.settings, self.model
        inputs = {k: v.to(accelerator.device) for k, v in
                  _model_inputs(batch, self.layout.mixed, self.attention, self.dtype).items()}
        with accelerator.accumulate(model):
            loss = model(**inputs, use_cache=False).loss  # mean NLL of this micro-batch's targets
            accelerator.backward(loss)  # divided by grad_accum inside accelerate
            if accelerator.sync_gradients and settings.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            self.optimizer.step()  # a no-op until the last micro-batch of the step
            self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def log(self, step: int, lr: float, loss: float, long_rows: int) -> None:
        """A train_log.jsonl line every `log_every` steps, and for the first and the last."""
        settings, progress = self.settings, self.progress
        due = (step + 1) % settings.log_every == 0 or step == self.start_step or step + 1 == settings.steps
        if self.accelerator.is_main_process and due:
            record = {"step": step + 1, "loss": round(loss, 6), "lr": lr, "tokens": progress.tokens,
                      "long_rows": long_rows, "rows": settings.batch_size * settings.grad_accum,
                      "seconds": round(progress.seconds, 3)}
            JsonlWriter(self.log_path).write(record)

    def checkpoint_due(self, step: int) -> bool:
        """Every `save_every` steps, but not after the last: the export follows it."""
        every, done = self.settings.save_every, step + 1
        return bool(every) and done % every == 0 and done < self.settings.steps

    def save_checkpoint(self) -> None:
        """The full state into checkpoint.tmp/ (by every process), progress.json last, then
        swapped in: a kill at any moment leaves one whole checkpoint."""
        accelerator, tmp = self.accelerator, self.out_dir / CHECKPOINT_TMP
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        if accelerator.is_main_process:
            record = {**dataclasses.asdict(self.progress), "fingerprint": self.fingerprint}
            write_json_atomic(tmp / PROGRESS, record)  # last: it makes the folder complete
            _swap_in(self.out_dir)
        accelerator.wait_for_everyone()

    def export(self, tokenizer) -> None:
        """Back to a plain HF model (LoRA merged, transformers' rotary module for this scaling,
        inference mode), saved by the main process with train_result.json; no checkpoint is
        left, since there is nothing to resume."""
        from ropebench.model.export import save_extended
        from ropebench.model.patch import apply_scaling

        accelerator, settings = self.accelerator, self.settings
        accelerator.wait_for_everyone()
        model = accelerator.unwrap_model(self.model)
        if settings.lora is not None:
            model = merge_lora(model)
        if settings.gradient_checkpointing:
            model.gradient_checkpointing_disable()
        model.config.use_cache = True
        model.eval()
        apply_scaling(model, self.scaling)
        if accelerator.is_main_process:
            save_extended(model, tokenizer, self.scaling, self.out_dir)
            write_json_atomic(self.out_dir / "train_result.json", self._result_record())
            for name in (CHECKPOINT, CHECKPOINT_TMP, CHECKPOINT_OLD):
                shutil.rmtree(self.out_dir / name, ignore_errors=True)

    def _result_record(self) -> dict[str, Any]:
        progress = self.progress
        return {"method": self.scaling.method, "mixed": self.layout.mixed,
                "settings": dataclasses.asdict(self.settings), "tokens": progress.tokens,
                "tokens_short": progress.by_kind["short"], "tokens_long": progress.by_kind["long"],
                "seconds": round(progress.seconds, 3), "final_loss": progress.losses[-1][1],
                "trainable_parameters": self.trainable}

    def result(self) -> TrainResult:
        progress = self.progress
        return TrainResult(out_dir=self.out_dir, losses=progress.losses, tokens=progress.tokens,
                           seconds=progress.seconds, tokens_short=progress.by_kind["short"],
                           tokens_long=progress.by_kind["long"], trainable_parameters=self.trainable)

"""Pretrain the reference model: a tiny Llama at a 512-token window, on CPU, in about 2 hours.

Recipe (what made a model this small actually retrieve and match keys):
1. a warm-up at 64 then 128 tokens: repeated stretches of text (an induction head forms within a
   few hundred steps) and multi-query key-value recall whose pair count grows, so the answer loss
   leaves chance early even for three layers;
2. a length curriculum 128 -> 256 -> 512 tokens: natural text, retrieval tasks in the evaluation
   formats (mostly multi-key, multi-value and multi-query needles), a little recall alongside;
3. AdamW, linear warm-up then cosine decay, gradient clipping; answer tokens weighted x5;
4. a window phase: a second warm-up and cosine at the full window on a mix weighted towards the
   tasks that match keys (multi-key, multi-value, multi-query, variable tracking), where the
   curriculum leaves the model copying "the number" rather than the one asked for.
The run is deterministic for a seed, writes a loss log, and checkpoints so it can resume.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ropebench.errors import RopebenchError
from ropebench.reference.data import WINDOW_TASK_MIX, MixtureConfig, TrainingMixture
from ropebench.training.trainer import warmup_cosine


@dataclass
class ModelShape:
    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 384
    # Three layers: two copy one needle, but matching a key among several needles (and copying its
    # 7 digits where digits repeat across needles) needs more. Deeper models need a lower lr.
    layers: int = 3
    # Two heads of 64: 32 RoPE pairs, about half on each side of the critical dimension at 512.
    heads: int = 2
    # None: hidden_size // heads.
    head_dim: int | None = None
    window: int = 512
    rope_theta: float = 10000.0


@dataclass
class WindowPhase:
    """Steps after the curriculum, every row at the full window, with a schedule of their own.

    Re-warming the learning rate after the curriculum's cosine has decayed lets the model move
    again; the mix shifts weight to key matching, which 512-token rows teach and short rows do not.
    """
    steps: int = 1400
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 50
    mixture: MixtureConfig = field(default_factory=lambda: MixtureConfig(
        natural_share=0.3, recall_share=0.1, task_mix=dict(WINDOW_TASK_MIX)))


@dataclass
class ReferenceTrainConfig:
    steps: int = 3100
    batch_size: int = 16
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    # (fraction of steps, row length): the curriculum. Length 0 = the dense recall warm-up.
    curriculum: list[tuple[float, int]] = field(
        default_factory=lambda: [(0.565, 0), (0.69, 128), (0.855, 256), (1.0, 512)]
    )
    # Short rows make the warm-up cheap: without a warm-up whose answer loss leaves chance, a small
    # model never learns to retrieve in the long rows.
    # Rows of `recall_length` tokens in the first half of the warm-up, twice that in the second
    # (room for more pairs and queries).
    recall_length: int = 64
    # Multi-query associative recall: the pair count per row grows from 1 to this over the first
    # two thirds of the warm-up, while queries fill the rest of every row from the start.
    max_recall_pairs: int = 8
    checkpoint_every: int = 200
    corpus_limit: int | None = None  # use only the first N corpus documents (smoke tests)
    shape: ModelShape = field(default_factory=ModelShape)
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    window_phase: WindowPhase | None = field(default_factory=WindowPhase)

    @property
    def total_steps(self) -> int:
        return self.steps + (self.window_phase.steps if self.window_phase else 0)


def micro_config(seed: int = 0) -> ReferenceTrainConfig:
    """A few steps of a tiny model on a slice of the corpus: a smoke test of the whole pipeline."""
    return ReferenceTrainConfig(
        steps=8, batch_size=2, warmup_steps=2, checkpoint_every=4, seed=seed,
        shape=ModelShape(vocab_size=512, hidden_size=32, intermediate_size=64, layers=1, heads=2,
                         window=128),
        curriculum=[(0.25, 0), (1.0, 128)], recall_length=64, corpus_limit=40,
        window_phase=WindowPhase(steps=2, lr=1e-3, min_lr=1e-4, warmup_steps=1),
    )


def build_model(shape: ModelShape, tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.heads,
        head_dim=shape.head_dim or shape.hidden_size // shape.heads,
        max_position_embeddings=shape.window,
        rope_parameters={"rope_type": "default", "rope_theta": shape.rope_theta},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM._from_config(config, attn_implementation="sdpa", dtype=torch.float32)


def in_window_phase(cfg: ReferenceTrainConfig, step: int) -> bool:
    return cfg.window_phase is not None and step >= cfg.steps


def stage_length(cfg: ReferenceTrainConfig, step: int) -> int:
    if in_window_phase(cfg, step):
        return cfg.shape.window
    progress = step / cfg.steps
    return next(length for until, length in cfg.curriculum if progress < until or until >= 1.0)


def recall_row_length(cfg: ReferenceTrainConfig, step: int) -> int:
    """Row length of a warm-up step: `recall_length`, then twice that in the second half."""
    return cfg.recall_length if step < cfg.curriculum[0][0] * cfg.steps / 2 else 2 * cfg.recall_length


def lr_at(cfg: ReferenceTrainConfig, step: int) -> float:
    if in_window_phase(cfg, step):
        phase = cfg.window_phase
        return warmup_cosine(step - cfg.steps, peak=phase.lr, floor=phase.min_lr,
                             warmup_steps=phase.warmup_steps, total_steps=phase.steps)
    return warmup_cosine(step, peak=cfg.lr, floor=cfg.min_lr, warmup_steps=cfg.warmup_steps,
                         total_steps=cfg.steps)


def weighted_lm_loss(logits: torch.Tensor, input_ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    # logits [B, T, V] predict input_ids shifted by one; weights [B, T] weigh the *predicted* token.
    nll = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)), input_ids[:, 1:].reshape(-1), reduction="none"
    )  # [B*(T-1)]
    w = weights[:, 1:].reshape(-1)
    return (nll * w).sum() / w.sum().clamp_min(1.0)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    return float(values[mask].mean()) if mask.any() else float("nan")


LOSS_LOG, CHECKPOINT = "loss_log.jsonl", "checkpoint.pt"


@dataclass
class _Run:
    """What a reference training run steps and saves."""
    cfg: ReferenceTrainConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    mixture: TrainingMixture
    out_dir: Path


def train_reference(out_dir: Path, cfg: ReferenceTrainConfig, tokenizer=None, progress: bool = True) -> Path:
    """Train (or resume) into `out_dir`; the final model + tokenizer land in `out_dir/final`."""
    from ropebench.corpus import documents

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)  # the model's initial weights depend on the seed alone
    docs = documents("train")[: cfg.corpus_limit]
    if tokenizer is None:
        tokenizer = _tokenizer(out_dir / "tokenizer", docs, cfg.shape.vocab_size)
    model = build_model(cfg.shape, tokenizer)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay
    )
    mixture = TrainingMixture(tokenizer, cfg.mixture, seed=cfg.seed, work_dir=out_dir, docs=docs)
    run = _Run(cfg, model, optimizer, mixture, out_dir)
    start_step = _resume(run)
    (out_dir / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    _train_steps(run, start_step, progress)
    final = out_dir / "final"
    model.eval()
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    return final


def _tokenizer(tok_dir: Path, docs: list[str], vocab_size: int):
    """The tokenizer an earlier (interrupted) run saved in `tok_dir`, or a new one saved there."""
    if (tok_dir / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(tok_dir)
    from ropebench.reference.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(docs, vocab_size)
    tokenizer.save_pretrained(tok_dir)
    return tokenizer


def _resume(run: _Run) -> int:
    """The step to start at: 0 without a checkpoint; else its step, with weights, optimizer and
    both rng streams (data, torch) restored so the run goes on as if never interrupted."""
    ckpt = run.out_dir / CHECKPOINT
    if not ckpt.exists():
        return 0
    try:  # tensors, numbers and tuples only: loading never runs pickled code
        state = torch.load(ckpt, weights_only=True)
    except Exception as err:  # noqa: BLE001  (torn or foreign file: one line, how to fix)
        raise RopebenchError(
            f"cannot resume from {ckpt} ({type(err).__name__}); delete it to train from scratch"
        ) from err
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.mixture.rng.setstate(state["data_rng"])
    torch.set_rng_state(state["torch_rng"])
    # Steps after the checkpoint were lost with the interruption: drop their log lines.
    log_path = run.out_dir / LOSS_LOG
    if log_path.exists():
        kept = [line for line in log_path.read_text().splitlines()
                if json.loads(line)["step"] <= state["step"]]
        log_path.write_text("".join(line + "\n" for line in kept))
    return state["step"]


def _train_steps(run: _Run, start_step: int, progress: bool) -> None:
    """Steps `start_step` to the end: one loss-log line each, a checkpoint every
    `checkpoint_every` steps and at the end of each phase."""
    cfg = run.cfg
    run.model.train()
    t0 = time.time()
    bar = tqdm(range(start_step, cfg.total_steps), initial=start_step, total=cfg.total_steps,
               disable=not progress)
    with (run.out_dir / LOSS_LOG).open("a") as log:
        for step in bar:
            input_ids, weights, length = _next_batch(cfg, run.mixture, step)  # (B, T) each
            logits, loss = _optimizer_step(run, step, input_ids, weights)
            answer_loss, by_kind = _answer_losses(logits, input_ids, weights, run.mixture.last_kinds)
            entry = {"step": step + 1, "length": length,
                     "phase": "window" if in_window_phase(cfg, step) else "curriculum",
                     "loss": round(loss.item(), 4),
                     "answer_loss": round(answer_loss, 4), **by_kind, "lr": lr_at(cfg, step),
                     "tokens": int((weights > 0).sum()), "elapsed_s": round(time.time() - t0, 1)}
            log.write(json.dumps(entry) + "\n")
            bar.set_postfix(len=length, loss=f"{loss.item():.3f}", ans=f"{answer_loss:.3f}")
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 in (cfg.steps, cfg.total_steps):
                log.flush()  # the log holds every step the checkpoint has seen
                _save_checkpoint(run, step + 1)


def _next_batch(cfg: ReferenceTrainConfig, mixture: TrainingMixture,
                step: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The rows of `step`: input ids and loss weights, (B, T) each, and the curriculum's row
    length (0: the recall warm-up)."""
    length = stage_length(cfg, step)
    # Set every step, not carried over: a resumed run draws the same rows.
    mixture.use(cfg.window_phase.mixture if in_window_phase(cfg, step) else cfg.mixture)
    if length == 0:
        # Start with one pair per row (plain copying), then add distractor pairs: a
        # small model does not find key matching when it starts with many pairs.
        grow_end = cfg.curriculum[0][0] * cfg.steps * 2 / 3
        mixture.recall_pairs = (1, 1 + min(cfg.max_recall_pairs - 1,
                                           int(cfg.max_recall_pairs * step / grow_end)))
        input_ids, weights = mixture.recall_batch(cfg.batch_size, recall_row_length(cfg, step))
    else:
        mixture.recall_pairs = (1, cfg.max_recall_pairs)
        input_ids, weights = mixture.batch(cfg.batch_size, length)
    return input_ids, weights, length


def _optimizer_step(run: _Run, step: int, input_ids: torch.Tensor,
                    weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One AdamW step on the weighted loss of one batch: (logits (B, T, V), loss ())."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr_at(run.cfg, step)
    logits = run.model(input_ids=input_ids).logits  # (B, T, V)
    loss = weighted_lm_loss(logits, input_ids, weights)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.max_grad_norm)
    run.optimizer.step()
    return logits, loss


def _answer_losses(logits: torch.Tensor, input_ids: torch.Tensor, weights: torch.Tensor,
                   kinds: list[str]) -> tuple[float, dict[str, float]]:
    """Loss on the answer tokens alone (it tells whether retrieval is being learned), and per
    kind of row (`answer_loss_repeat`, ..., rounded for the log)."""
    with torch.no_grad():
        nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), input_ids[:, 1:],
                              reduction="none")  # (B, T-1)
        answer_mask = weights[:, 1:] > 1.0  # (B, T-1)
        by_kind = {}
        for kind in ("repeat", "recall", "task"):
            of_kind = torch.tensor([k == kind for k in kinds])  # (B,)
            by_kind[f"answer_loss_{kind}"] = round(
                _masked_mean(nll, answer_mask & of_kind[:, None]), 4)
        return _masked_mean(nll, answer_mask), by_kind


def _save_checkpoint(run: _Run, step: int) -> None:
    """Everything `_resume` restores, written aside and renamed over the last checkpoint."""
    ckpt = run.out_dir / CHECKPOINT
    tmp = ckpt.with_suffix(".tmp")
    torch.save({"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                "data_rng": run.mixture.rng.getstate(), "torch_rng": torch.get_rng_state(),
                "step": step}, tmp)
    tmp.replace(ckpt)

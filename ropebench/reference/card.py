"""Measure the reference model the way its model card reports it.

Three questions, each answered on fresh samples:
1. Does it retrieve at its native 512-token window (needle, passkey, multi-key, variable tracking)?
   Each task against its target, with a 95% interval and the sample count.
2. Does it fail out of distribution without extension (retrieval at 4x; perplexity of the last
   512 positions of a 2048 window against the first 512)?
3. Do untrained extensions (none, PI, NTK, YaRN) behave differently at 4x and 8x? A test bed on
   which every method scores the same cannot rank them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ropebench.backends.hf import HFBackend
from ropebench.methods import get_extender
from ropebench.model.patch import apply_scaling, spec_of
from ropebench.reference.data import TASK_OPTIONS
from ropebench.run.evaluate import run_evaluation
from ropebench.stats import fraction_estimate
from ropebench.tasks.ppl import long_documents

NATIVE = 512
UNTRAINED_METHODS = ("none", "pi", "ntk", "yarn")
# Task -> the % the model should reach at its native window (the reference-model issue's targets).
TARGETS: dict[str, float] = {
    "niah_single_1": 98, "niah_multikey_1": 80, "niah_multikey_2": 80, "niah_multivalue": 70,
    "niah_multiquery": 70, "vt": 70, "passkey": 95,
}
RETRIEVAL_TASKS = tuple(TARGETS)
COLLAPSE = 20  # % below which retrieval at 4x the window counts as collapsed
PPL_RISE = 1.5  # last-window / first-window perplexity at 4x the window


@dataclass
class CardSettings:
    samples: int = 100
    untrained_samples: int = 50  # the extension table: a sanity check, not a target
    ppl_documents: int = 8
    seed: int = 1234  # not the training seed: every sample here is fresh
    haystack: str = "pydoc"  # held-out text for the essay-style tasks and perplexity


def position_ppl(backend: HFBackend, window: int, documents: int, haystack: str) -> tuple[float, float]:
    """Perplexity of the first and of the last `NATIVE` positions of `window`-token documents."""
    first = last = 0.0
    n_first = n_last = 0
    for ids in long_documents(backend.tokenizer, window, documents, haystack):
        head, tail = backend.nll(ids, 1, NATIVE), backend.nll(ids, window - NATIVE)
        first, n_first = first + head.total, n_first + head.count
        last, n_last = last + tail.total, n_last + tail.count
    return math.exp(first / n_first), math.exp(last / n_last)


def measure(model, tokenizer, out_dir: Path, settings: CardSettings) -> dict[str, pd.DataFrame]:
    """Run every measurement (rows land in `out_dir`, so a re-run resumes) and tabulate."""
    spec = spec_of(model)
    backend = HFBackend(model, tokenizer, identity={"model": "reference"})
    # The task options the model was trained with (vt without its one-shot example at 512).
    common = dict(samples=settings.samples, seed=settings.seed, out_dir=out_dir,
                  options={"haystack": settings.haystack, **TASK_OPTIONS}, progress=True)
    retrieval = run_evaluation(backend, method="none", tasks=list(RETRIEVAL_TASKS),
                               lengths=[NATIVE, 4 * NATIVE], **common)
    p_first, p_last = position_ppl(backend, 4 * NATIVE, settings.ppl_documents, settings.haystack)

    rows = []
    for method in UNTRAINED_METHODS:
        for scale in (4, 8):
            target = scale * NATIVE
            apply_scaling(model, get_extender(method).rescale(spec, target))
            label = f"{method}-x{scale}"
            frame = run_evaluation(backend, method=label, tasks=["niah_single_1", "ppl"],
                                   lengths=[NATIVE, target],
                                   **{**common, "samples": settings.untrained_samples})
            for length in (NATIVE, target):
                at = frame[frame["length"] == length]
                rows.append({
                    "method": method, "scale": f"x{scale}", "length": length,
                    "niah_single_1": 100 * at[at["task"] == "niah_single_1"]["score"].mean(),
                    "ppl": at[at["task"] == "ppl"]["score"].mean(),
                })
    apply_scaling(model, get_extender("none").rescale(spec, 2 * NATIVE))

    return {
        "retrieval": retrieval_table(retrieval),
        "position_ppl": pd.DataFrame([{"window": 4 * NATIVE, "first_512": round(p_first, 2),
                                       "last_512": round(p_last, 2),
                                       "ratio": round(p_last / p_first, 2),
                                       "target": f">= {PPL_RISE:g}",
                                       "met": "yes" if p_last / p_first >= PPL_RISE else "no"}]),
        "untrained": pd.DataFrame(rows).round(2),
    }


def retrieval_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per task: % at the window and at 4x with 95% intervals and counts, and the targets met."""
    table = []
    for task, of_task in rows.groupby("task", sort=False):
        entry: dict = {"task": task}
        for length, label in ((NATIVE, "native"), (4 * NATIVE, "4x")):
            scores = of_task[of_task["length"] == length]["score"].tolist()
            cell = fraction_estimate(scores).scaled(100)
            entry[f"{label} %"] = round(cell.score, 1)
            entry[f"{label} 95% CI"] = f"{cell.low:.1f}-{cell.high:.1f}"
            entry[f"{label} n"] = len(scores)
        entry["target"] = f">= {TARGETS[task]:g}"
        entry["met"] = "yes" if entry["native %"] >= TARGETS[task] else "no"
        entry["collapsed at 4x"] = "yes" if entry["4x %"] < COLLAPSE else "no"
        table.append(entry)
    return pd.DataFrame(table).set_index("task")


def _loss_curve(log: list[dict], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e["step"] for e in log]
    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    ax.plot(steps, pd.Series([e["loss"] for e in log]).rolling(25, min_periods=1).mean(), label="loss")
    answer = pd.Series([e["answer_loss"] for e in log]).rolling(25, min_periods=1).mean()
    ax.plot(steps, answer, label="answer-token loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (25-step mean)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def _curriculum(log: list[dict]) -> str:
    """Step ranges per row length and phase, as they ran (0 = the dense recall warm-up)."""
    spans: list[list] = []  # [(length, phase), first step, last step]
    for entry in log:
        key = (entry["length"], entry.get("phase", "curriculum"))
        if spans and spans[-1][0] == key:
            spans[-1][2] = entry["step"]
        else:
            spans.append([key, entry["step"], entry["step"]])

    def name(length: int, phase: str) -> str:
        rows = "recall warm-up" if length == 0 else f"{length}-token rows"
        return rows + (" (window phase)" if phase == "window" else "")

    return ", ".join(f"steps {first}-{last}: {name(*key)}" for key, first, last in spans)


def _window_phase(cfg: dict) -> str:
    phase = cfg.get("window_phase")
    if not phase:
        return ""
    mix = ", ".join(f"{name} {share:.0%}" for name, share in phase["mixture"]["task_mix"].items())
    return (f"\nThen a window phase (the last {phase['steps']} steps): every row at the full window, lr "
            f"{phase['lr']:g} -> {phase['min_lr']:g} (warm-up {phase['warmup_steps']}, cosine), rows "
            f"natural text {phase['mixture']['natural_share']:.0%}, recall "
            f"{phase['mixture']['recall_share']:.0%}, retrieval tasks the rest ({mix}).")


def write_card(checkpoint: Path, train_dir: Path, tables: dict[str, pd.DataFrame]) -> Path:
    """README.md (model card) + loss_curve.png beside the shipped weights."""
    import json

    from ropebench.corpus import documents

    cfg = json.loads((train_dir / "train_config.json").read_text())
    log = [json.loads(line) for line in (train_dir / "loss_log.jsonl").read_text().splitlines()]
    _loss_curve(log, checkpoint / "loss_curve.png")
    # Rows x row length: the tokens the model processed, padding of short task rows included.
    from ropebench.reference.train import ReferenceTrainConfig, recall_row_length

    stages = ReferenceTrainConfig(steps=cfg["steps"], recall_length=cfg["recall_length"],
                                  curriculum=[tuple(c) for c in cfg["curriculum"]])
    tokens = sum(cfg["batch_size"] * (e["length"] or recall_row_length(stages, e["step"] - 1))
                 for e in log)
    # elapsed_s restarts from 0 when a run resumes: add up the segments.
    ends = [e for e, nxt in zip(log, log[1:] + [None], strict=True) if nxt is None or nxt["elapsed_s"] < e["elapsed_s"]]
    wall = sum(e["elapsed_s"] for e in ends)
    resumed = ", ".join(str(e["step"] + 1) for e in ends[:-1])
    shape = cfg["shape"]
    head_dim = shape.get("head_dim") or shape["hidden_size"] // shape["heads"]
    from safetensors.torch import load_file

    n_params = sum(p.numel() for p in load_file(str(checkpoint / "model.safetensors")).values())
    text = f"""# ropebench reference model

A tiny Llama trained by `ropebench reference train` on two CPU cores, so that every method in
ropebench can be compared for real without a GPU or a download. It has a native window of
{shape['window']} tokens and, like large models, fails beyond it unless its RoPE is extended.

## Model
`LlamaForCausalLM`: {shape['layers']} layers, hidden {shape['hidden_size']}, {shape['heads']} heads
(head dim {head_dim}, {head_dim // 2} RoPE pairs),
MLP {shape['intermediate_size']}, tied embeddings, RoPE base {shape['rope_theta']:g},
{n_params / 1e6:.2f}M parameters; float32 safetensors. Tokenizer: byte-level BPE, vocabulary
{shape['vocab_size']}, digits split one per token, `<|bos|>` / `<|eos|>` / `<|pad|>`.

## Data
- Natural text: docstrings and comments of the Python standard library
  ({len(documents('train'))} modules, `ropebench.corpus`); the language reference
  topics of `pydoc_data` are held out (the `pydoc` haystack and the perplexity evaluations).
- Retrieval in the evaluation formats, from the `ropebench.tasks` generators
  ({', '.join(f"{name} {share:.0%}" for name, share in cfg['mixture']['task_mix'].items())}; essay-style
  haystacks are shuffled training text), plus key-value recall; answer tokens weighted
  x{cfg['mixture']['answer_weight']:g}, an EOS after each answer. Rows: natural text
  {cfg['mixture']['natural_share']:.0%}, recall {cfg['mixture'].get('recall_share', 0):.0%}, retrieval tasks the rest.
- Warm-up (steps with row length 0 below): repeated stretches of training text (the repeat
  weighted as answers, {cfg['mixture'].get('repeat_share', 0):.0%} of the rows) and multi-query key-value recall, compact
  (`key value` lines, then keys asked back) or in the needle wording, up to
  {cfg.get('max_recall_pairs', 0)} pairs a row, at {cfg['recall_length']} then {2 * cfg['recall_length']} tokens.
- Curriculum (from the loss log): {_curriculum(log)}.

## Training
{log[-1]['step']} steps of {cfg['batch_size']} rows, {tokens / 1e6:.1f}M tokens processed, AdamW (lr
{cfg['lr']:g} -> {cfg['min_lr']:g}, warm-up {cfg['warmup_steps']}, cosine, weight decay
{cfg['weight_decay']:g}, clip {cfg['max_grad_norm']:g}), seed {cfg['seed']}.{_window_phase(cfg)} Wall time
{wall / 60:.1f} min on 2 CPU cores{f" (resumed at step {resumed})" if resumed else ""}. Final loss
{log[-1]['loss']:.3f}.

![loss curve](loss_curve.png)

## Measured (fresh samples, `ropebench reference card`)
Retrieval, % (RULER string-match-all: the share of the expected values found; passkey: first
integer), no extension, at the native window and at 4x, each with its 95% interval (Wilson's at
the sample count, docs/intervals.md) and sample count; haystack `pydoc` (held-out text), vt without its
one-shot example (RULER's 500-token example does not fit a 512-token window):

{tables['retrieval'].to_markdown()}

Perplexity by position in a {int(tables['position_ppl']['window'][0])}-token window (held-out text):

{tables['position_ppl'].to_markdown(index=False)}

Untrained extensions at 4x and 8x (niah_single_1 % and perplexity at the native window and the target):

{tables['untrained'].to_markdown(index=False)}
"""
    (checkpoint / "README.md").write_text(text)
    return checkpoint / "README.md"

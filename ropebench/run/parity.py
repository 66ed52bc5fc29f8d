"""HF vs another backend on the same exported model: per-token log-probs and greedy tokens.

`engine_parity(model, methods, target, lengths)` rescales `model` with each method, exports it
(`save_extended`), and compares transformers (the exported directory loaded by vanilla
transformers, float32) with the vLLM backend on the same token windows: the max |log-prob
difference| over the positions inside the pretrained window and beyond it, and whether greedy
completions agree. `bench/engine_parity.py` prints the table in docs/engines.md.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ropebench.errors import RopebenchError

# Methods ropebench exports (model/export.py): one per rope_type it writes.
EXPORTED_METHODS = ("none", "pi", "ntk", "dynamic-ntk", "yarn", "llama3", "longrope", "longrope2")


@dataclass
class ParityRow:
    method: str
    length: int
    inside: float | None  # max |logprob diff| over scored positions < window
    beyond: float | None  # ... over positions >= window (None: the sequence fits the window)
    greedy_equal: bool | None
    note: str = ""


def hf_token_logprobs(model, ids: list[int]) -> list[float]:
    """log p(ids[p] | ids[:p]) for p = 1 .. len(ids) - 1 (float32 log-softmax)."""
    with torch.inference_mode():
        x = torch.tensor([ids])
        logits = model(x, use_cache=False).logits[0].float()
        return torch.log_softmax(logits, -1)[:-1].gather(1, x[0, 1:, None])[:, 0].tolist()


def compare(hf_lp: list[float], other_lp: list[float], window: int) -> tuple[float, float | None]:
    diff = [abs(a - b) for a, b in zip(hf_lp, other_lp, strict=True)]
    # diff[k] is the prediction of token k + 1 by the forward over positions 0..k
    inside = max(diff[: window - 1]) if diff[: window - 1] else 0.0
    beyond = max(diff[window - 1 :]) if len(diff) > window - 1 else None
    return inside, beyond


def engine_parity(
    model_name: str,
    methods: list[str],
    target_length: int,
    lengths: list[int],
    *,
    greedy_tokens: int = 32,
    workdir: str | Path | None = None,
    options: dict[str, Any] | None = None,
) -> list[ParityRow]:
    from transformers import AutoModelForCausalLM

    from ropebench.backends.hf import HFBackend
    from ropebench.backends.vllm import VLLMBackend, export_for_vllm
    from ropebench.methods import get_extender
    from ropebench.model.load import load_config_dict
    from ropebench.rope.spec import RopeSpec
    from ropebench.tasks.haystacks import get_haystack

    spec = RopeSpec.from_config(load_config_dict(model_name))
    rows: list[ParityRow] = []
    tmp = tempfile.TemporaryDirectory(prefix="ropebench-parity-") if workdir is None else None
    root = Path(workdir or tmp.name)  # type: ignore[union-attr]
    try:
        for method in methods:
            scaling = None if method == "none" else get_extender(method).rescale(spec, target_length)
            model_dir = export_for_vllm(model_name, scaling, root / method)
            model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
            backend = VLLMBackend(model_dir, options={"max_model_len": max(target_length, max(lengths)),
                                                      **(options or {})})
            tok = backend.tokenizer
            hay = get_haystack("pydoc")
            bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
            hf = HFBackend(model, tok)
            try:
                for n in lengths:
                    ids = bos + hay.token_window(tok, 0, n - len(bos))
                    note = ""
                    try:
                        other = backend.token_logprobs(ids)
                        inside, beyond = compare(hf_token_logprobs(model, ids), other, spec.window)
                    except RopebenchError as err:
                        inside = beyond = None
                        note = str(err)
                    prompt = ids[: max(8, n - greedy_tokens)]
                    try:
                        a = hf.generate([prompt], greedy_tokens)[0].text
                        b = backend.generate([prompt], greedy_tokens)[0].text
                        greedy = a == b
                    except RopebenchError as err:
                        greedy = None
                        note = note or str(err).split(";")[0]
                    rows.append(ParityRow(method, n, inside, beyond, greedy, note))
            finally:
                backend.close()
                del model
    finally:
        if tmp is not None:
            tmp.cleanup()
    return rows


def markdown_table(rows: list[ParityRow], window: int) -> str:
    def fmt(x: float | None) -> str:
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1e}"

    lines = [
        f"| method | length | inside window (< {window}) | beyond window | greedy equal | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        greedy = "n/a" if r.greedy_equal is None else ("yes" if r.greedy_equal else "NO")
        lines.append(f"| {r.method} | {r.length} | {fmt(r.inside)} | {fmt(r.beyond)} | {greedy} | "
                     f"{r.note} |")
    return "\n".join(lines)


def as_dicts(rows: list[ParityRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]

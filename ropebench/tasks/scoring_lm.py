"""Negative log-likelihood of chosen tokens without full-vocabulary logits everywhere.

The decoder runs once over the sequence; the output head is applied only to the positions whose
next token is scored, a chunk at a time. Memory therefore grows with the sequence length times the
hidden size, never with length times vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

HEAD_CHUNK = 1024  # positions per lm_head call: caps the float32 logits at HEAD_CHUNK x vocab


def decoder_and_head(model):
    """The base model (hidden states) and the output projection of a HF causal LM."""
    base = getattr(model, model.base_model_prefix, None)
    if base is None:
        base = model.get_decoder()
    return base, model.get_output_embeddings()


@torch.inference_mode()
def nll_sum(
    model, input_ids: torch.Tensor, first_target: int, last_target: int | None = None
) -> tuple[float, int]:
    """Summed NLL of tokens `input_ids[0, first_target:last_target]` given their prefixes.

    `input_ids` is (1, T) on the model's device; `first_target >= 1`. Returns (sum, count).
    """
    base, head = decoder_and_head(model)
    last_target = input_ids.shape[1] if last_target is None else last_target
    hidden = base(input_ids=input_ids, use_cache=False).last_hidden_state  # (1, T, H)
    # Position p predicts token p + 1: keep only the positions whose next token is scored.
    hidden = hidden[0, first_target - 1 : last_target - 1]  # (N, H)
    labels = input_ids[0, first_target:last_target]  # (N,)
    total = 0.0
    for start in range(0, labels.shape[0], HEAD_CHUNK):
        logits = head(hidden[start : start + HEAD_CHUNK]).float()  # (chunk, V)
        total += F.cross_entropy(logits, labels[start : start + HEAD_CHUNK], reduction="sum").item()
    return total, int(labels.shape[0])

"""Batched greedy generation with the KV cache, across the short/long RoPE switch.

Prompts are sorted by token count and batched, so a batch holds prompts of (nearly) equal length
and left padding stays small. Decoding goes through `ropebench.extenders.patch.generate`, which
re-prefills the cache when a switching scaling crosses the pretrained window mid-generation.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ropebench.tasks.prompting import encode

# tokenizer -> ids of every token whose text contains a newline.
_NEWLINE_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass
class Completion:
    text: str
    input_tokens: int
    seconds: float  # this row's share of its batch's wall time


def newline_token_ids(tokenizer) -> list[int]:
    if tokenizer not in _NEWLINE_IDS:
        pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        _NEWLINE_IDS[tokenizer] = [i for i, piece in enumerate(pieces) if "\n" in piece]
    return _NEWLINE_IDS[tokenizer]


def _batches(lengths: Sequence[int], batch_size: int, max_tokens: int) -> Iterator[list[int]]:
    """Indices sorted by length, grouped so a batch has at most `batch_size` rows and
    `max_tokens` padded tokens (long prompts run alone, short ones share a forward)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == batch_size or (len(batch) + 1) * lengths[i] > max_tokens):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


@torch.inference_mode()
def greedy_completions(
    model,
    tokenizer,
    texts: Sequence[str],
    max_new_tokens: int,
    *,
    batch_size: int = 8,
    max_batch_tokens: int = 16384,
    stop_at_newline: bool = False,
) -> list[Completion]:
    """Greedy completions of `texts`, in order. Generation stops at EOS (and at a newline when
    asked); the returned text is cut at the first newline in that case."""
    from ropebench.extenders.patch import generate

    device = next(model.parameters()).device
    encoded = [encode(tokenizer, text) for text in texts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop_ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if stop_at_newline:
        stop_ids += newline_token_ids(tokenizer)

    results: list[Completion | None] = [None] * len(texts)
    for batch in _batches([len(ids) for ids in encoded], batch_size, max_batch_tokens):
        width = max(len(encoded[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)  # (B, T), left-padded
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids = encoded[i]
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        start = time.perf_counter()
        new = generate(
            model,
            input_ids.to(device),
            attention_mask.to(device),
            max_new_tokens=max_new_tokens,
            eos_token_id=stop_ids or None,
            pad_token_id=pad,
        )  # (B, new)
        seconds = (time.perf_counter() - start) / len(batch)
        for row, i in enumerate(batch):
            text = tokenizer.decode(new[row].tolist(), skip_special_tokens=True)
            if stop_at_newline:
                text = text.split("\n", 1)[0]
            results[i] = Completion(text, len(encoded[i]), seconds)
    return results  # type: ignore[return-value]

"""Batched greedy generation for long prompts and short answers.

RULER-style work is one long prefill and a few dozen decode steps per prompt, so the prefill
decides the cost. `model.generate` on a left-padded batch needs a dense attention mask for it,
which sends SDPA to its masked kernel (about 2.7x slower than the causal one at 4K tokens on CPU).
So the fast engine here:
- prefills each prompt alone (no padding: SDPA's causal kernel) and applies the output head to
  the last position only;
- merges the rows' caches into one left-padded cache, preallocated for the whole answer so a
  decode step writes one slot instead of copying the cache, and decodes the batch together;
- drops a row from the batch at a stop token, or as soon as its task says the score can no longer
  change (`settled`; e.g. RULER's string match once every reference has appeared).

RoPE that changes with the sequence length during generation (dynamic NTK, or a LongRoPE switch
crossed by this batch) goes through `generate_across_switch` instead, which re-prefills at the switch.
Prompts are sorted by token count and batched, so the padding of the shared cache stays small.
"""

from __future__ import annotations

import inspect
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ropebench.errors import RopebenchError
from ropebench.rope.scaling import switch_length

ENGINES = ("fast", "hf")
# `model.generate` prefills a batch padded to its longest row with a dense mask: keep that small.
HF_BATCH_TOKENS = 16384

# tokenizer -> ids of every token whose text contains a newline.
_NEWLINE_IDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# (row in this batch, tokens generated so far) -> True when the row is finished.
RowDone = Callable[[int, list[int]], bool]


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


def rope_is_static(config, prompt_lengths: Sequence[int], max_new_tokens: int) -> bool:
    """True when every position keeps one rotation for the whole generation, so a cache filled
    by separate prefills stays valid for a batched decode."""
    params = getattr(config, "rope_parameters", None) or {}
    if params.get("rope_type") == "dynamic":  # the base grows with the sequence
        return False
    window = switch_length(config)
    if window is None:
        return True
    # A LongRoPE switch is fine if no row crosses the pretrained window while generating.
    return all(n > window or n + max_new_tokens <= window for n in prompt_lengths)


class _PaddedLayer(DynamicLayer):
    """A cache layer holding left-padded rows in a buffer sized for prompt + answer, so that a
    decode step writes its key and value in place instead of concatenating the whole cache."""

    def __init__(self, keys: list[torch.Tensor], values: list[torch.Tensor], capacity: int):
        super().__init__()
        width = max(k.shape[-2] for k in keys)
        first = keys[0]  # (1, kv_heads, T_row, head_dim)
        shape = (len(keys), first.shape[1], capacity, first.shape[3])
        self._keys = first.new_zeros(shape)  # (B, kv_heads, capacity, head_dim)
        self._values = values[0].new_zeros(shape)
        for row, (k, v) in enumerate(zip(keys, values, strict=True)):
            self._keys[row, :, width - k.shape[-2] : width] = k[0]
            self._values[row, :, width - v.shape[-2] : width] = v[0]
        self._length = width
        self.device, self.is_initialized = first.device, True
        self._expose()

    def _expose(self) -> None:
        self.keys = self._keys[:, :, : self._length]
        self.values = self._values[:, :, : self._length]

    def update(self, key_states, value_states, *args, **kwargs):
        new = key_states.shape[-2]
        if self._length + new > self._keys.shape[2]:
            raise RuntimeError("decode ran past the answer length the cache was sized for")
        self._keys[:, :, self._length : self._length + new] = key_states
        self._values[:, :, self._length : self._length + new] = value_states
        self._length += new
        self._expose()
        return self.keys, self.values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._keys, self._values = self._keys[indices], self._values[indices]
        self._expose()


def _cache_argument(model) -> str:
    """The forward argument that takes the KV cache (`past_key_values` before transformers 5.24)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _prefill_rows(model, prompts: Sequence[list[int]]) -> tuple[list, torch.Tensor] | None:
    """One unpadded forward per prompt; returns the per-row caches and the first greedy tokens,
    or None when the model's cache is not made of plain full-attention layers."""
    device = next(model.parameters()).device
    caches, first = [], []
    for ids in prompts:
        out = model(input_ids=torch.tensor([ids], device=device), use_cache=True, logits_to_keep=1)
        cache = getattr(out, "cache", None) or out.past_key_values
        if not isinstance(cache, DynamicCache) or any(
            type(la) is not DynamicLayer for la in cache.layers
        ):
            return None  # sliding-window or hybrid caches: leave them to `model.generate`
        caches.append(cache)
        first.append(out.logits[0, -1].argmax())
    return caches, torch.stack(first)  # (B,)


@torch.inference_mode()
def decode_batch(
    model, prompts: Sequence[list[int]], max_new_tokens: int, row_done: RowDone
) -> list[list[int]] | None:
    """Greedy tokens for each prompt (the finishing token included), or None when the model's
    cache layout needs `model.generate`."""
    prefilled = _prefill_rows(model, prompts)
    if prefilled is None:
        return None
    caches, next_ids = prefilled
    device = next_ids.device
    width = max(len(p) for p in prompts)
    capacity = width + max_new_tokens
    cache = DynamicCache()
    cache.layers = [
        _PaddedLayer(
            [c.layers[i].keys for c in caches], [c.layers[i].values for c in caches], capacity
        )
        for i in range(len(caches[0].layers))
    ]
    del caches
    cache_arg = _cache_argument(model)
    mask = torch.zeros((len(prompts), capacity), dtype=torch.long, device=device)  # (B, capacity)
    for row, ids in enumerate(prompts):
        mask[row, width - len(ids) : width] = 1
    mask[:, width:] = 1  # answer slots; a row only ever attends to the ones it has filled
    positions = torch.tensor([len(p) for p in prompts], device=device)  # (B,) next position

    tokens: list[list[int]] = [[] for _ in prompts]
    active = list(range(len(prompts)))  # original rows, in cache order
    for step in range(max_new_tokens):
        for row, token in zip(active, next_ids.tolist(), strict=True):
            tokens[row].append(token)
        keep = [j for j, row in enumerate(active) if not row_done(row, tokens[row])]
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            next_ids, positions, mask = next_ids[index], positions[index], mask[index]
            active = [active[j] for j in keep]
        logits = model(
            input_ids=next_ids[:, None],  # (A, 1)
            attention_mask=mask[:, : width + step + 1],  # (A, cached + 1)
            position_ids=positions[:, None],
            use_cache=True,
            **{cache_arg: cache},
        ).logits  # (A, 1, V)
        next_ids = logits[:, -1].argmax(-1)  # (A,)
        positions = positions + 1
    return tokens


@torch.inference_mode()
def _hf_generate(
    model, prompts: Sequence[list[int]], max_new_tokens: int, stop_ids: list[int], pad: int
) -> list[list[int]]:
    """`patch.generate` on a left-padded batch (re-prefills across a LongRoPE switch)."""
    device = next(model.parameters()).device
    width = max(len(ids) for ids in prompts)
    input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)  # (B, T), left-padded
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids) :] = torch.tensor(ids)
        attention_mask[row, width - len(ids) :] = 1
    new = generate_across_switch(
        model,
        input_ids.to(device),
        attention_mask.to(device),
        max_new_tokens=max_new_tokens,
        eos_token_id=stop_ids or None,
        pad_token_id=pad,
    )  # (B, new)
    return new.tolist()


def greedy_completions(
    model,
    tokenizer,
    encoded: Sequence[list[int]],
    max_new_tokens: int,
    *,
    batch_size: int = 8,
    max_batch_tokens: int = 65536,
    stop_at_newline: bool = False,
    settled: Callable[[int, str], bool] | None = None,
    engine: str = "fast",
) -> list[Completion]:
    """Greedy completions of the token-id prompts `encoded`, in order. A row stops at EOS (and at a newline when asked;
    its text is then cut there), or once `settled(index, text)` is true (fast engine).

    A batch holds at most `batch_size` rows and `max_batch_tokens` prompt tokens in its KV cache
    (the fast engine prefills rows one at a time, so this bounds the cache, not the prefill)."""
    if engine not in ENGINES:
        raise RopebenchError(
            f"unknown generation engine {engine!r}; use one of {', '.join(ENGINES)}"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    stop_ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if stop_at_newline:
        stop_ids += newline_token_ids(tokenizer)
    stop_set = set(stop_ids)

    def text_of(tokens: list[int]) -> str:
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        return text.split("\n", 1)[0] if stop_at_newline else text

    results: list[Completion | None] = [None] * len(encoded)
    for batch in _batches([len(ids) for ids in encoded], batch_size, max_batch_tokens):
        prompts = [encoded[i] for i in batch]
        start = time.perf_counter()
        new = None
        if engine == "fast" and rope_is_static(
            model.config, [len(p) for p in prompts], max_new_tokens
        ):

            def row_done(row: int, tokens: list[int], batch=batch) -> bool:
                if tokens[-1] in stop_set:
                    return True
                return settled is not None and settled(batch[row], text_of(tokens))

            new = decode_batch(model, prompts, max_new_tokens, row_done)
        if new is None:
            new = [[] for _ in prompts]
            for part in _batches([len(p) for p in prompts], batch_size, HF_BATCH_TOKENS):
                tokens = _hf_generate(
                    model, [prompts[r] for r in part], max_new_tokens, stop_ids, pad
                )
                for r, row_tokens in zip(part, tokens, strict=True):
                    new[r] = row_tokens
        seconds = (time.perf_counter() - start) / len(batch)
        for row, i in enumerate(batch):
            results[i] = Completion(text_of(new[row]), len(encoded[i]), seconds)
    return results  # type: ignore[return-value]


@torch.no_grad()
def generate_across_switch(
    model,
    input_ids: torch.LongTensor,
    attention_mask: torch.Tensor | None = None,
    max_new_tokens: int = 32,
    **kwargs: Any,
) -> torch.LongTensor:
    """Greedy `model.generate` that returns only the new tokens `(batch, new)`.

    With a switching scaling, the step whose input first exceeds the pretrained window L must see
    every earlier key rotated with the long factors, but the KV cache holds them rotated with the
    short ones. So generation stops when the sequence reaches L + 1 tokens and resumes with a fresh
    prefill of the whole sequence (transformers does this only for Phi-3). Rows are left-padded;
    the switch is decided for the whole batch by its longest row, as transformers does.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    kwargs = {"do_sample": False, **kwargs}
    generation_config = model.generation_config
    eos = kwargs.get("eos_token_id", generation_config.eos_token_id)
    pad = kwargs.get("pad_token_id", generation_config.pad_token_id)
    if pad is None:
        pad = eos[0] if isinstance(eos, list) else eos
    kwargs["pad_token_id"] = pad

    window = switch_length(model.config)
    longest = int(attention_mask.sum(-1).max())
    first = max_new_tokens
    if window is not None and longest <= window:
        # Inputs of up to L tokens use the short factors; the forward on L + 1 tokens is the first long one.
        first = min(max_new_tokens, window + 1 - longest)

    new = _generate_new(model, input_ids, attention_mask, first, kwargs)
    if first == max_new_tokens or new.shape[1] < first:  # no switch, or every row already stopped
        return new
    input_ids = torch.cat([input_ids, new], dim=1)
    attention_mask = torch.cat([attention_mask, torch.ones_like(new)], dim=1)
    rest = _generate_new(model, input_ids, attention_mask, max_new_tokens - first, kwargs)
    return _pad_after_eos(torch.cat([new, rest], dim=1), eos, pad)


def _generate_new(
    model, input_ids, attention_mask, max_new_tokens: int, kwargs
) -> torch.LongTensor:
    out = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens, **kwargs
    )
    return out[:, input_ids.shape[1] :]


def _pad_after_eos(
    tokens: torch.LongTensor, eos: int | list[int] | None, pad: int
) -> torch.LongTensor:
    """Rows that stopped before the re-prefill kept going in the second call: blank them again."""
    if eos is None:
        return tokens
    eos_ids = torch.tensor(eos if isinstance(eos, list) else [eos], device=tokens.device)
    is_eos = torch.isin(tokens, eos_ids)  # (batch, new)
    after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0  # strictly after the first EOS
    return tokens.masked_fill(after_eos, pad)

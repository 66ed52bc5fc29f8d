"""Fit synthetic prompts to a token budget, the way RULER does.

A task supplies a `Builder`: given a number of haystack units (words, lines, documents...), a
random generator and the sample index, it returns a `Draft`. The budget is RULER's: tokens of the prompt (chat wrapper and
answer prefix included, BOS excluded) plus `max_new_tokens` must not exceed the target length. The
largest unit count that fits is found once per (task, length, tokenizer) by galloping + bisection;
each sample is then built with its own generator and stepped down if its random draw overflows.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.tasks.base import Sample


@dataclass
class Draft:
    """A sample before it is checked against the budget. `text` goes inside the chat turn."""

    text: str
    answer_prefix: str
    references: list[str]
    answer: str
    metadata: dict[str, Any] = field(default_factory=dict)


Builder = Callable[[int, random.Random, int], Draft]

# tokenizer -> {cache key -> unit count}: the search costs a few full-size tokenizations.
_FIT_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def uses_chat(tokenizer, chat: bool | None = None) -> bool:
    """Wrap in the chat template when asked, or by default when the tokenizer has one."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat and not has_template:
        raise RopebenchError("chat=True but the tokenizer has no chat template; drop the option")
    return has_template if chat is None else chat


def wrap(tokenizer, text: str, chat: bool) -> str:
    """The user turn of the model's chat template, ready for the assistant's answer."""
    if not chat:
        return text
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )


def count_tokens(tokenizer, text: str) -> int:
    """Tokens of `text` as the model sees them, BOS excluded (RULER's budget)."""
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos):
        text = text[len(bos) :]
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode(tokenizer, text: str) -> list[int]:
    """Token ids to feed the model: BOS added unless the (chat-wrapped) text already has it."""
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and text.startswith(bos))
    return tokenizer(text, add_special_tokens=add_special)["input_ids"]


def sample_rng(seed: int, task: str, length: int, index: int) -> random.Random:
    """Each sample has its own generator, so sample i never depends on how many were asked for."""
    return random.Random(f"{seed}:{task}:{length}:{index}")


def largest_fitting(fits: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest u in [lo, hi] with fits(u), given fits(lo) and fits monotone decreasing."""
    step = 1
    while lo < hi and fits(min(lo + step, hi)):
        lo = min(lo + step, hi)
        step *= 2
    bad = min(lo + step, hi + 1)  # first value known (or assumed past hi) not to fit
    while bad - lo > 1:
        mid = (lo + bad) // 2
        if fits(mid):
            lo = mid
        else:
            bad = mid
    return lo


def build_samples(
    task: str,
    builder: Builder,
    tokenizer,
    length: int,
    n: int,
    seed: int,
    *,
    max_new_tokens: int,
    metric: str,
    min_units: int,
    max_units: int,
    chat: bool | None = None,
    cache_key: Hashable = (),
) -> list[Sample]:
    """`n` samples of `task` at `length` tokens, deterministic in (seed, task, length, index)."""
    chat = uses_chat(tokenizer, chat)

    def tokens(draft: Draft) -> int:
        return count_tokens(tokenizer, wrap(tokenizer, draft.text, chat) + draft.answer_prefix)

    budget = length - max_new_tokens
    # The fit depends on the tokenizer and the prompt shape, not on the seed: callers that draw one
    # sample at a time with fresh seeds (training data) reuse it.
    key = (task, length, max_new_tokens, chat, cache_key)
    cache = _FIT_CACHE.setdefault(tokenizer, {})
    if key not in cache:

        def probe(units: int) -> bool:
            return tokens(builder(units, sample_rng(0, task, length, -1), 0)) <= budget

        if not probe(min_units):
            raise RopebenchError(
                f"{task} does not fit in {length} tokens (prompt + {max_new_tokens} new tokens); "
                "use a longer length or a smaller max_new_tokens option"
            )
        cache[key] = largest_fitting(probe, min_units, max_units)
    fitted = cache[key]

    samples = []
    for index in range(n):
        units = fitted
        while True:
            draft = builder(units, sample_rng(seed, task, length, index), index)
            n_tokens = tokens(draft)
            if n_tokens <= budget or units == min_units:
                break
            units = max(min_units, units - max(1, units // 50))
        if n_tokens > budget:
            raise RopebenchError(
                f"{task} sample {index} needs {n_tokens + max_new_tokens} tokens > {length}; "
                "use a longer length"
            )
        samples.append(
            Sample(
                task=task,
                length=length,
                index=index,
                prompt=wrap(tokenizer, draft.text, chat),
                answer_prefix=draft.answer_prefix,
                references=draft.references,
                answer=draft.answer,
                max_new_tokens=max_new_tokens,
                metric=metric,
                metadata={**draft.metadata, "units": units, "input_tokens": n_tokens},
            )
        )
    return samples

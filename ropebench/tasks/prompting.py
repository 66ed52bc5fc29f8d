"""Fit synthetic prompts to a token budget, the way RULER does.

A task supplies a `Builder`: given a number of haystack units (words, lines, documents...), a
random generator and the sample index, it returns a `Draft`. The budget is RULER's: tokens of the
prompt (chat wrapper and answer prefix included) plus `max_new_tokens` must not exceed the target
length. Two ways to fill it (the `fill` option of RULER tasks):

- `reference` (NVIDIA/RULER's generators): a binary search over unit counts between one step and
  three times the units the whole length would hold, each probe a fresh random draw; then every
  sample is drawn at that size and, while its draw overflows, redrawn one whole step smaller (500
  essay words, 25 noise lines, 10 documents, ...). Many samples therefore end well below the
  budget, as in published tables. RULER's fwe instead searches linearly upwards from a starting
  count, and draws once for the whole search and once per sample: its probes and step-downs
  only change the size.
- `tight` (ropebench's own): the largest count that fits one fixed draw (galloping + bisection),
  and an overflowing sample steps down by 2% of its units, so samples nearly fill the budget.

Neither counts the BOS token (RULER counts the tokenizer's `tokenize`, which adds none); the
`count_bos` option of RULER tasks counts it.

The fit is found once per (task, length, tokenizer, options) and cached.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.tasks.base import Sample


@dataclass
class Draft:
    """A sample before it is checked against the budget. `text` goes inside the chat turn;
    `turns` are solved (user, assistant) exchanges before it, each rendered as its own chat turn
    (chat templates only: without one a builder writes its examples into `text`)."""

    text: str
    answer_prefix: str
    references: list[str]
    answer: str
    metadata: dict[str, Any] = field(default_factory=dict)
    turns: list[tuple[str, str]] = field(default_factory=list)


Builder = Callable[[int, random.Random, int], Draft]

# tokenizer -> {cache key -> unit count}: the search costs a few full-size tokenizations.
_FIT_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def uses_chat(tokenizer, chat: bool | None = None) -> bool:
    """Wrap in the chat template when asked, or by default when the tokenizer has one."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat and not has_template:
        raise RopebenchError("chat=True but the tokenizer has no chat template; drop the option")
    return has_template if chat is None else chat


def wrap(tokenizer, text: str, chat: bool, turns: Sequence[tuple[str, str]] = ()) -> str:
    """The user turn of the model's chat template, after the exchanges in `turns`, ready for the
    assistant's answer."""
    if not chat:
        if turns:
            raise ValueError("earlier turns need a chat template")
        return text
    history = [{"role": role, "content": content} for exchange in turns
               for role, content in zip(("user", "assistant"), exchange, strict=True)]
    try:
        return tokenizer.apply_chat_template(
            [*history, {"role": "user", "content": text}], tokenize=False,
            add_generation_prompt=True,
        )
    except Exception as err:  # noqa: BLE001  (Jinja raises many kinds; one line for all)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise RopebenchError(
            f"the tokenizer's chat template fails on a user turn ({type(err).__name__}: "
            f"{first[:120]}); fix chat_template in the model's tokenizer files, or run without "
            "it: --set tasks.chat=false"
        ) from err


def check_chat_template(tokenizer, chat: bool | None = None) -> None:
    """Render one exchange and a user turn now, so a template that raises stops the run before
    the weights load rather than at its first sample."""
    if uses_chat(tokenizer, chat):
        wrap(tokenizer, "ping", True, [("ping", "pong")])


FILLS = ("reference", "tight")


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    """An enumerated option's value, or an error naming the choices."""
    if value not in choices:
        raise RopebenchError(f"option {option}={value!r} is not one of {', '.join(choices)}")
    return value


def count_tokens(tokenizer, text: str, *, bos: bool = False) -> int:
    """Tokens of `text` as the model sees them; BOS excluded unless `bos` (then counted once,
    whether the text already starts with it or the tokenizer adds it)."""
    token = getattr(tokenizer, "bos_token", None)
    if token and text.startswith(token):
        text = text[len(token) :]
    n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    if bos and token:
        ids = tokenizer("", add_special_tokens=True)["input_ids"]
        n += int(getattr(tokenizer, "bos_token_id", None) in ids)
    return n


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


def reference_fit(fits: Callable[[int], bool], per_unit: Callable[[], float], step: int,
                  length: int, factor: int = 3, whole_units_first: bool = False) -> int | None:
    """NVIDIA/RULER's search: tokens per unit estimated from one draw, then a binary search over
    [step, max(int(length / per_unit * factor), 2 * step)], each probe with a fresh draw; None
    when no probe fits (RULER then uses `step`). The bound uses the whole length, generated tokens
    included, as RULER's does: a budget-based bound starts the bisection elsewhere and so settles
    on other draws. `whole_units_first`: `int(length // per_unit) * factor`, RULER's cwe bound."""
    rate = per_unit()
    units = int(length // rate) * factor if whole_units_first else int(length / rate * factor)
    lo, hi = step, max(units, 2 * step)
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(mid):
            best, lo = mid, mid + 1
        else:
            hi = mid - 1
    return best


def linear_fit(fits: Callable[[int], bool], start: int, step: int, hi: int) -> int:
    """NVIDIA/RULER's fwe search: up from `start` units by `step` while a probe fits (and stays
    within `hi`), then one step back; `start - step` when `start` itself does not fit."""
    units = start
    while units <= hi and fits(units):
        units += step
    return units - step


# Redraws at one step or less before the reference fill shrinks the sample by 2% (RULER would
# redraw forever): enough that a size where one draw in ten fits is never given up on.
MAX_REDRAWS = 200


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
    fill: str = "tight",
    step: int = 1,
    estimate_units: int | None = None,
    count_bos: bool = False,
    search_factor: int = 3,
    whole_units_first: bool = False,
    linear_from: int | None = None,
    redraw: bool = True,
    search_builder: Builder | None = None,
    search_extra_tokens: int = 0,
) -> list[Sample]:
    """`n` samples of `task` at `length` tokens, deterministic in (seed, task, length, index).

    `fill`: "reference" (RULER's search and step-down by `step` units; the search estimates
    tokens per unit from `estimate_units` units, default `step`; `search_factor` and
    `whole_units_first` shape its upper bound, see `reference_fit`; with `linear_from` it is
    `linear_fit` from that count instead) or "tight" (see the module doc). `redraw=False` (reference
    fill): the search's probes, and each sample's step-downs, replay one draw of the generator, so
    only the unit count changes. `count_bos`: count the BOS token in the budget.
    `search_builder` (reference fill): the search estimates its rate and draws its probes from
    this builder instead, adding `search_extra_tokens` to every probe: RULER's vt searches with
    the task text alone and counts its one-shot example as a constant, so the example's tokens
    do not inflate the tokens per noise line (and so shrink the search's upper bound).
    """
    check_choice("fill", fill, FILLS)
    reference = fill == "reference"
    chat = uses_chat(tokenizer, chat)
    step = max(1, step)

    def tokens(draft: Draft) -> int:
        text = wrap(tokenizer, draft.text, chat, draft.turns) + draft.answer_prefix
        return count_tokens(tokenizer, text, bos=count_bos)

    budget = length - max_new_tokens
    # The fit depends on the tokenizer and the prompt shape, not on the seed: callers that draw one
    # sample at a time with fresh seeds (training data) reuse it.
    key = (task, length, max_new_tokens, chat, cache_key, fill, step, count_bos,
           search_extra_tokens)
    cache = _FIT_CACHE.setdefault(tokenizer, {})
    stream = None
    if reference:
        # RULER draws the search's probes and then every sample from one generator seeded with
        # the run seed, so the fit (and where the stream stands after it) depends on the seed.
        key += (seed,)
        if key not in cache:
            stream = random.Random(seed)

            def clamp(units: int) -> int:
                return min(max(units, min_units), max_units)

            first_draw = stream.getstate()
            probe_builder = search_builder or builder

            def probe_tokens(units: int) -> int:
                if not redraw:
                    stream.setstate(first_draw)
                return tokens(probe_builder(clamp(units), stream, 0)) + search_extra_tokens

            def per_unit() -> float:
                units = clamp(estimate_units or step)
                return max(tokens(probe_builder(units, stream, 0)), 1) / units

            if linear_from is None:
                found = reference_fit(lambda units: probe_tokens(units) <= budget, per_unit, step,
                                      length, search_factor, whole_units_first)
            else:
                # RULER's fwe stops at the first probe that reaches the budget, not past it.
                found = linear_fit(lambda units: probe_tokens(units) < budget,
                                   clamp(linear_from), step, max_units)
            # No probe fit: RULER draws every sample at one step and redraws until a draw fits
            # (cwe at 4096 with a small-vocabulary tokenizer, where few do), so no error here.
            fitted = clamp(step if found is None else found)
            cache[key] = (fitted, stream.getstate())
        fitted, state = cache[key]
        stream = random.Random()
        stream.setstate(state)
    else:
        # The fit depends on the tokenizer and the prompt shape, not on the seed: callers that
        # draw one sample at a time with fresh seeds (training data) reuse it.
        if key not in cache:

            def probe(units: int) -> bool:
                return tokens(builder(units, sample_rng(0, task, length, -1), 0)) <= budget

            if not probe(min_units):
                raise RopebenchError(
                    f"{task} does not fit in {length} tokens (prompt + {max_new_tokens} new "
                    "tokens); use a longer length or a smaller max_new_tokens option"
                )
            cache[key] = largest_fitting(probe, min_units, max_units)
        fitted = cache[key]

    samples = []
    for index in range(n):
        units = fitted
        redraws = 0
        replay = stream.getstate() if stream is not None and not redraw else None
        while True:
            if replay is not None:
                stream.setstate(replay)
            rng = stream if reference else sample_rng(seed, task, length, index)
            draft = builder(units, rng, index)
            n_tokens = tokens(draft)
            if n_tokens <= budget:
                break
            if reference and units > step and units > min_units:
                # RULER: one whole step smaller while above one step, a fresh draw each time
                # (unless `redraw` is off).
                units = max(min_units, units - step)
            elif reference and redraw and redraws < MAX_REDRAWS:
                redraws += 1  # RULER redraws at this size until a draw fits
            elif units == min_units:
                break
            else:
                units = max(min_units, units - max(1, units // 50))
        if n_tokens > budget:
            raise RopebenchError(
                f"{task} sample {index} does not fit in {length} tokens (needs "
                f"{n_tokens + max_new_tokens} with {max_new_tokens} new tokens); use a longer "
                "length or a smaller max_new_tokens option"
            )
        samples.append(
            Sample(
                task=task,
                length=length,
                index=index,
                prompt=wrap(tokenizer, draft.text, chat, draft.turns),
                answer_prefix=draft.answer_prefix,
                references=draft.references,
                answer=draft.answer,
                max_new_tokens=max_new_tokens,
                metric=metric,
                metadata={**draft.metadata, "units": units, "input_tokens": n_tokens,
                          "fill": fill, "count_bos": count_bos},
            )
        )
    return samples

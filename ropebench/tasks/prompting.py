"""Fit synthetic prompts to a token budget, the way RULER does.

A task supplies a `Layout`: a `Builder` (given a number of haystack units (words, lines,
documents...), a random generator and the sample index, it returns a `Draft`) and the range and
step of that number. The `Budget` is RULER's: tokens of the
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


@dataclass(frozen=True)
class Budget:
    """What one prompt may spend: `length` tokens hold the prompt (chat wrapper and answer prefix
    included) and `max_new_tokens`. `fill`: "reference" or "tight" (see the module doc);
    `count_bos`: the BOS token counts against the budget."""

    length: int
    max_new_tokens: int
    chat: bool
    fill: str = "tight"
    count_bos: bool = False

    def __post_init__(self) -> None:
        if self.fill not in FILLS:
            raise RopebenchError(f"fill={self.fill!r} is not one of {', '.join(FILLS)}")

    @property
    def prompt_tokens(self) -> int:
        return self.length - self.max_new_tokens


@dataclass(frozen=True)
class ReferenceSearch:
    """How RULER's own generator of a task sizes it (the reference fill; see `reference_fit`)."""

    estimate_units: int | None = None  # units of the draw that estimates tokens per unit (a step)
    factor: int = 3  # the search's upper bound: `factor` x the units the length holds
    whole_units_first: bool = False  # `int(length // per_unit) * factor`: RULER's cwe bound
    linear_from: int | None = None  # RULER's fwe: `linear_fit` up from this many units instead
    redraw: bool = True  # False: probes and a sample's step-downs replay one draw (size changes)
    # Draws the probes instead of the task's builder, each counted `extra_tokens` more: RULER's vt
    # searches with the task text alone and counts its one-shot example as a constant, so the
    # example's tokens do not inflate the tokens per noise line.
    builder: Builder | None = None
    extra_tokens: int = 0


@dataclass(frozen=True)
class Layout:
    """How a task's prompts grow: `builder` drafts one with a number of haystack units, between
    `min_units` and `max_units`; the reference fill steps down `step` units at a time and sizes
    the haystack as `search` says. `cache_key`: whatever else shapes the drafts (options)."""

    builder: Builder
    min_units: int
    max_units: int
    metric: str = "all"
    step: int = 1
    cache_key: Hashable = ()
    search: ReferenceSearch = ReferenceSearch()

    def __post_init__(self) -> None:
        if self.step < 1:
            raise ValueError(f"a layout steps by at least one unit, not {self.step}")


def build_samples(task: str, tokenizer, n: int, seed: int, budget: Budget,
                  layout: Layout) -> list[Sample]:
    """`n` samples of `task` fitted to `budget`, deterministic in (seed, task, length, index)."""
    fitting = _Fitting(task, tokenizer, budget, layout)
    if budget.fill == "reference":
        units, stream = fitting.reference_units(seed)
    else:
        units, stream = fitting.tight_units(), None
    return [fitting.sample(index, *fitting.fitted_draft(units, seed, stream, index))
            for index in range(n)]


@dataclass(frozen=True)
class _Fitting:
    """One task's prompts against one budget: the size search and each sample's fit."""

    task: str
    tokenizer: Any
    budget: Budget
    layout: Layout

    def tokens(self, draft: Draft) -> int:
        text = wrap(self.tokenizer, draft.text, self.budget.chat, draft.turns) + draft.answer_prefix
        return count_tokens(self.tokenizer, text, bos=self.budget.count_bos)

    def clamp(self, units: int) -> int:
        return min(max(units, self.layout.min_units), self.layout.max_units)

    def cache(self) -> tuple[dict, tuple]:
        """This tokenizer's fits, and the key of this one: the fit depends on the tokenizer and
        the prompt shape, not on the seed, so callers that draw one sample at a time with fresh
        seeds (training data) reuse it."""
        b, layout = self.budget, self.layout
        key = (self.task, b.length, b.max_new_tokens, b.chat, layout.cache_key, b.fill,
               layout.step, b.count_bos, layout.search.extra_tokens)
        return _FIT_CACHE.setdefault(self.tokenizer, {}), key

    def tight_units(self) -> int:
        """The largest unit count whose one fixed draw fits the budget."""
        cache, key = self.cache()
        if key not in cache:

            def fits(units: int) -> bool:
                draft = self.layout.builder(units, sample_rng(0, self.task, self.budget.length, -1), 0)
                return self.tokens(draft) <= self.budget.prompt_tokens

            if not fits(self.layout.min_units):
                raise RopebenchError(
                    f"{self.task} does not fit in {self.budget.length} tokens (prompt + "
                    f"{self.budget.max_new_tokens} new tokens); use a longer length or a smaller "
                    "max_new_tokens option")
            cache[key] = largest_fitting(fits, self.layout.min_units, self.layout.max_units)
        return cache[key]

    def reference_units(self, seed: int) -> tuple[int, random.Random]:
        """RULER's size, and the stream the samples draw from. RULER draws the search's probes
        and then every sample from one generator seeded with the run seed, so the fit (and where
        the stream stands after it) depends on the seed."""
        cache, key = self.cache()
        key += (seed,)
        if key not in cache:
            stream = random.Random(seed)
            found = self.reference_search(stream)
            # No probe fit: RULER draws every sample at one step and redraws until a draw fits
            # (cwe at 4096 with a small-vocabulary tokenizer, where few do), so no error here.
            cache[key] = (self.clamp(self.layout.step if found is None else found),
                          stream.getstate())
        units, state = cache[key]
        stream = random.Random()
        stream.setstate(state)
        return units, stream

    def reference_search(self, stream: random.Random) -> int | None:
        """`reference_fit` (or RULER's fwe `linear_fit`) with probes drawn from `stream`."""
        search, layout, limit = self.layout.search, self.layout, self.budget.prompt_tokens
        first_draw = stream.getstate()
        builder = search.builder or layout.builder

        def probe_tokens(units: int) -> int:
            if not search.redraw:
                stream.setstate(first_draw)
            return self.tokens(builder(self.clamp(units), stream, 0)) + search.extra_tokens

        def per_unit() -> float:
            units = self.clamp(search.estimate_units or layout.step)
            return max(self.tokens(builder(units, stream, 0)), 1) / units

        if search.linear_from is None:
            return reference_fit(lambda units: probe_tokens(units) <= limit, per_unit, layout.step,
                                 self.budget.length, search.factor, search.whole_units_first)
        # RULER's fwe stops at the first probe that reaches the budget, not past it.
        return linear_fit(lambda units: probe_tokens(units) < limit,
                          self.clamp(search.linear_from), layout.step, layout.max_units)

    def fitted_draft(self, units: int, seed: int, stream: random.Random | None,
                     index: int) -> tuple[Draft, int, int]:
        """Sample `index` drawn at `units`, smaller while it overflows: (draft, units, tokens)."""
        reference = stream is not None
        replay = stream.getstate() if reference and not self.layout.search.redraw else None
        redraws = 0
        while True:
            if replay is not None:
                stream.setstate(replay)
            rng = stream if reference else sample_rng(seed, self.task, self.budget.length, index)
            draft = self.layout.builder(units, rng, index)
            n_tokens = self.tokens(draft)
            if n_tokens <= self.budget.prompt_tokens:
                return draft, units, n_tokens
            smaller = self.smaller(units, reference, redraws)
            if smaller is None:
                raise RopebenchError(
                    f"{self.task} sample {index} does not fit in {self.budget.length} tokens "
                    f"(needs {n_tokens + self.budget.max_new_tokens} with "
                    f"{self.budget.max_new_tokens} new tokens); use a longer length or a smaller "
                    "max_new_tokens option")
            units, redraws = smaller

    def smaller(self, units: int, reference: bool, redraws: int) -> tuple[int, int] | None:
        """The next try after a draw of `units` overflowed, as (units, redraws); None: give up."""
        layout = self.layout
        if reference and units > layout.step and units > layout.min_units:
            # RULER: one whole step smaller while above one step, a fresh draw each time (unless
            # `redraw` is off).
            return max(layout.min_units, units - layout.step), redraws
        if reference and layout.search.redraw and redraws < MAX_REDRAWS:
            return units, redraws + 1  # RULER redraws at this size until a draw fits
        if units == layout.min_units:
            return None
        return max(layout.min_units, units - max(1, units // 50)), redraws

    def sample(self, index: int, draft: Draft, units: int, n_tokens: int) -> Sample:
        b = self.budget
        return Sample(
            task=self.task, length=b.length, index=index,
            prompt=wrap(self.tokenizer, draft.text, b.chat, draft.turns),
            answer_prefix=draft.answer_prefix, references=draft.references, answer=draft.answer,
            max_new_tokens=b.max_new_tokens, metric=self.layout.metric,
            metadata={**draft.metadata, "units": units, "input_tokens": n_tokens,
                      "fill": b.fill, "count_bos": b.count_bos},
        )

"""RULER common words extraction (NVIDIA/RULER, scripts/data/synthetic/common_words_extraction.py).

The reference's choices, each an option:
- `words`: "reference" draws from wonderwords' 8,166 words while a list needs no more, then from
  the larger English list (see `words.english_words`); "wonderwords" (the 2024 generator) stops
  with an error where a length needs more words than wonderwords has.
- `positions`: "reference" shuffles each list with a fresh generator seeded by the run seed, so
  every sample of one size has its common words at the same positions; "per_sample" draws them.
- `example_turn` (chat templates only): "separate" puts the solved example in its own user turn
  and model turn, as the reference's per-example wrapping does; "inline" keeps it in the task's
  user turn.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ropebench.errors import RopebenchError
from ropebench.settings import setting
from ropebench.tasks.base import Sample
from ropebench.tasks.prompting import Draft, Layout, ReferenceSearch, uses_chat
from ropebench.tasks.ruler import templates
from ropebench.tasks.ruler.scoring import RulerTask
from ropebench.tasks.ruler.words import POSITIONS, cwe_vocabulary, english_words, shuffle
from ropebench.tasks.synthetic import RulerOptions

COMMON = 10
WORD_LISTS = ("reference", "wonderwords")
EXAMPLE_TURNS = ("separate", "inline")
# The reference's search estimates tokens per word from one draw of this many words.
ESTIMATE_WORDS = 4096


@dataclass
class CweOptions(RulerOptions):
    max_new_tokens: int = setting(templates.CWE_MAX_NEW, min=1)
    shots: int = setting(1, min=0)  # solved examples before the task
    words: str = setting("reference", choices=WORD_LISTS)
    positions: str = setting("reference", choices=POSITIONS)
    example_turn: str = setting("separate", choices=EXAMPLE_TURNS)


def numbered(words: list[str]) -> str:
    return " ".join(f"{i + 1}. {word}" for i, word in enumerate(words))


def word_pool(num_words: int) -> tuple[tuple[str, ...], str]:
    """The list `num_words` distinct words come from, and its name: wonderwords while it is big
    enough, else the English list (the reference does not mix the two)."""
    vocab = cwe_vocabulary()
    if num_words <= len(vocab):
        return vocab, "wonderwords"
    english = english_words()
    if num_words > len(english):
        raise RopebenchError(
            f"cwe needs {num_words} distinct words, more than the {len(english)} of the English "
            "list; use a shorter length"
        )
    return english, "english"


def word_list(rng: random.Random, num_words: int, common_repeats: int, other_repeats: int,
              fixed_seed: int | None) -> tuple[str, list[str], str]:
    """`num_words` distinct words, the first 10 repeated `common_repeats` times, the rest fewer;
    returns the numbered list, the common words and the name of the list they came from."""
    pool, name = word_pool(num_words)
    chosen = rng.sample(pool, num_words)
    common, others = chosen[:COMMON], chosen[COMMON:]
    words = common * common_repeats + others * other_repeats
    shuffle(words, rng, fixed_seed)
    return numbered(words), common, name


def cwe_draft(units: int, rng: random.Random, *, length: int, shots: int, fixed_seed: int | None,
              separate: bool) -> Draft:
    """RULER's frequencies: 30/3 from 4K tokens (example 40 words, 10/3), 6/1 below (example 20,
    3/1). `separate`: the solved examples become chat exchanges of their own instead of leading
    the task text."""
    if length >= 4096:
        example_shape, repeats = (40, 10, 3), (30, 3)
    else:
        example_shape, repeats = (20, 3, 1), (6, 1)
    examples = []
    for _ in range(shots):
        context, answer, _ = word_list(rng, *example_shape, fixed_seed)
        examples.append((templates.CWE_TEMPLATE.format(context=context),
                         templates.CWE_ANSWER_PREFIX + " " + numbered(answer)))
    context, common, pool = word_list(rng, units, *repeats, fixed_seed)
    task_text = templates.CWE_TEMPLATE.format(context=context)
    metadata = {"words": pool, "positions": "per_sample" if fixed_seed is None else "reference"}
    if shots:
        metadata["example_turn"] = "separate" if separate else "inline"
    return Draft(
        text=task_text if separate else "\n".join([*(q + a for q, a in examples), task_text]),
        answer_prefix=templates.CWE_ANSWER_PREFIX,
        references=common,
        answer=" " + numbered(common),
        metadata=metadata,
        turns=examples if separate else [],
    )


class RulerCWE(RulerTask):
    name = "cwe"
    description = "RULER common words extraction: the 10 most frequent words of a numbered list"
    Options = CweOptions

    def layout(self, tokenizer, length: int, n: int, seed: int, options: CweOptions) -> Layout:
        separate = uses_chat(tokenizer, options.chat) and options.example_turn == "separate"
        fixed_seed = seed if options.positions == "reference" else None
        most = max(length, ESTIMATE_WORDS)
        # Never more words than tokens, but room for the search's estimate at any length.
        if options.words == "wonderwords":
            most = min(most, len(cwe_vocabulary()))
        return Layout(
            lambda units, rng, _: cwe_draft(units, rng, length=length, shots=options.shots,
                                            fixed_seed=fixed_seed, separate=separate),
            min_units=COMMON, max_units=most, step=10,  # RULER: 10 words
            cache_key=(options.shots, options.positions, separate, options.words),
            search=ReferenceSearch(estimate_units=ESTIMATE_WORDS, factor=2, whole_units_first=True),
        )

    def make_samples(self, tokenizer, length: int, n: int, seed: int, options: CweOptions) -> list[Sample]:
        samples = super().make_samples(tokenizer, length, n, seed, options)
        vocab_size = len(cwe_vocabulary())
        if options.words == "wonderwords" and any(s.metadata["units"] >= vocab_size for s in samples):
            raise RopebenchError(
                f"cwe at {length} tokens needs more than wonderwords' {vocab_size} words; use "
                "words=reference (the larger English list) or a shorter length"
            )
        return samples

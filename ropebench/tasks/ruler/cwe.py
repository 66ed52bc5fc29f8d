"""RULER common words extraction (NVIDIA/RULER, scripts/data/synthetic/common_words_extraction.py)."""

from __future__ import annotations

import random

from ropebench.tasks.base import Sample
from ropebench.tasks.prompting import Draft, build_samples
from ropebench.tasks.ruler import templates
from ropebench.tasks.ruler.scoring import RulerTask
from ropebench.tasks.ruler.words import cwe_vocabulary

COMMON = 10


def numbered(words: list[str]) -> str:
    return " ".join(f"{i + 1}. {word}" for i, word in enumerate(words))


def word_list(rng: random.Random, num_words: int, common_repeats: int, other_repeats: int):
    """`num_words` distinct words: the first 10 repeated `common_repeats` times, the rest fewer."""
    chosen = rng.sample(cwe_vocabulary(), num_words)
    common, others = chosen[:COMMON], chosen[COMMON:]
    words = common * common_repeats + others * other_repeats
    rng.shuffle(words)
    return numbered(words), common


def cwe_draft(units: int, rng: random.Random, *, length: int, shots: int = 1) -> Draft:
    """RULER's frequencies: 30/3 from 4K tokens (example 40 words, 10/3), 6/1 below (example 20, 3/1)."""
    if length >= 4096:
        example_shape, repeats = (40, 10, 3), (30, 3)
    else:
        example_shape, repeats = (20, 3, 1), (6, 1)
    examples = []
    for _ in range(shots):
        context, answer = word_list(rng, *example_shape)
        examples.append(
            templates.CWE_TEMPLATE.format(context=context)
            + templates.CWE_ANSWER_PREFIX
            + " "
            + numbered(answer)
        )
    context, common = word_list(rng, units, *repeats)
    return Draft(
        text="\n".join([*examples, templates.CWE_TEMPLATE.format(context=context)]),
        answer_prefix=templates.CWE_ANSWER_PREFIX,
        references=common,
        answer=" " + numbered(common),
    )


class RulerCWE(RulerTask):
    name = "cwe"
    description = "RULER common words extraction: the 10 most frequent words of a numbered list"

    def samples(
        self,
        tokenizer,
        length: int,
        n: int,
        seed: int,
        *,
        max_new_tokens: int = templates.CWE_MAX_NEW,
        shots: int = 1,
        chat: bool | None = None,
        fill: str = "reference",
        count_bos: bool | None = None,
    ) -> list[Sample]:
        return build_samples(
            self.name,
            lambda units, rng, _: cwe_draft(units, rng, length=length, shots=shots),
            tokenizer,
            length,
            n,
            seed,
            max_new_tokens=max_new_tokens,
            metric="all",
            min_units=COMMON,
            max_units=min(length, len(cwe_vocabulary())),
            chat=chat,
            cache_key=(shots,),
            fill=fill,
            step=10,  # RULER: 10 words; its search estimates tokens per word from 4096 words
            estimate_units=min(4096, len(cwe_vocabulary())),
            search_factor=2,
            count_bos=count_bos,
        )


"""RULER frequent words extraction (NVIDIA/RULER, scripts/data/synthetic/freq_words_extraction.py).

`positions`: "reference" orders the vocabulary (hence which coded word gets which rank) and the
text with a fresh generator seeded by the run seed, as the reference does, so every sample of one
size has its words' ranks at the same positions; "per_sample" draws both orders per sample.

`fill`: "reference" is RULER's: from budget // 6 words up by budget // 32 until a draw reaches the
budget, one step back, then each sample one step down while it overflows; one vocabulary for the
whole search and one per sample. "tight" fits the budget closely (see `prompting`).
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass

from ropebench.errors import RopebenchError
from ropebench.settings import setting
from ropebench.tasks.prompting import FILLS, Draft, Layout, ReferenceSearch
from ropebench.tasks.ruler import templates
from ropebench.tasks.ruler.scoring import RulerTask
from ropebench.tasks.ruler.words import POSITIONS, shuffle
from ropebench.tasks.synthetic import PromptOptions

ALPHA = 2.0
ZETA_2 = math.pi**2 / 6  # zeta(ALPHA)
WORD_LETTERS = 6
# Fewest words for which ranks 2..4 all occur and rank 4 strictly beats rank 5:
# floor(N / 16 / zeta) > floor(N / 25 / zeta) holds from N = 73.
MIN_WORDS = 73


@dataclass
class FweOptions(PromptOptions):
    max_new_tokens: int = setting(templates.FWE_MAX_NEW, min=1)
    positions: str = setting("reference", choices=POSITIONS)
    fill: str = setting("reference", choices=FILLS)  # fwe counts no BOS option


def coded_vocabulary(rng: random.Random, size: int, fixed_seed: int | None) -> list[str]:
    vocab: set[str] = set()
    while len(vocab) < size:
        vocab.add("".join(rng.choices(string.ascii_lowercase, k=WORD_LETTERS)))
    words = sorted(vocab)
    shuffle(words, rng, fixed_seed)
    words[0] = "..."  # the top-ranked word is noise, to be ignored
    return words


def fwe_draft(units: int, rng: random.Random, *, vocab_size: int,
              fixed_seed: int | None) -> Draft:
    """`units` coded words drawn with Zipf(2) counts: rank k appears floor(N k^-2 / zeta(2)) times.
    `fixed_seed`: the reference's fixed-seed orders (see the module doc); None: drawn from `rng`."""
    vocab = coded_vocabulary(rng, vocab_size, fixed_seed)
    words = [
        w for k, w in enumerate(vocab, start=1) for _ in range(int(units * k**-ALPHA / ZETA_2))
    ]
    shuffle(words, rng, fixed_seed)
    answer = vocab[1:4]
    return Draft(
        text=templates.FWE_TEMPLATE.format(context=" ".join(words)),
        answer_prefix=templates.FWE_ANSWER_PREFIX,
        references=answer,
        answer=" " + " ".join(answer),
        metadata={"positions": "per_sample" if fixed_seed is None else "reference"},
    )


class RulerFWE(RulerTask):
    name = "fwe"
    description = "RULER frequent words extraction: the 3 most frequent coded words (Zipf, alpha 2)"
    Options = FweOptions

    def layout(self, tokenizer, length: int, n: int, seed: int, options: FweOptions) -> Layout:
        fixed_seed = seed if options.positions == "reference" else None
        budget = length - options.max_new_tokens
        vocab_size = budget // 50  # RULER: budget L = length - 50, vocab L // 50
        if vocab_size < 5:
            raise RopebenchError(
                f"fwe needs at least {5 * 50 + options.max_new_tokens} tokens; got {length}"
            )
        return Layout(
            lambda units, rng, _: fwe_draft(units, rng, vocab_size=vocab_size,
                                            fixed_seed=fixed_seed),
            min_units=MIN_WORDS, max_units=2 * length, cache_key=(options.positions,),
            step=budget // 32,  # RULER: L // 32 words, L the budget as above
            search=ReferenceSearch(linear_from=budget // WORD_LETTERS, redraw=False),
        )

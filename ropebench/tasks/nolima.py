"""Non-literal needles after NoLiMa (tasks `nolima_1`, `nolima_2`; group `nolima`).

RULER's single-needle question ("What is the special magic number for {key} ...?") over a needle
that shares no content word with it: "{Place} guards the code {value}." A bridge fact elsewhere in
the haystack, "The {key} was taken to {Place}.", is the one associative hop, so no outside
knowledge is needed. Places are invented names, so they never coincide with a key's words.
`distractors` (default 3) other key -> place -> code chains make the hop necessary: the asked
code is not the only one in the text.
`nolima_1` hides both in RULER's noise lines, `nolima_2` in essay sentences (option `haystack`).

Reported as a group, with NoLiMa's effective length (the longest length whose score stays at or
above 85% of the model's own score at the shortest length) beside RULER's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ropebench.settings import setting
from ropebench.tasks.haystacks import NOISE_LINE, get_haystack, split_sentences
from ropebench.tasks.prompting import Draft, Layout
from ropebench.tasks.ruler import templates
from ropebench.tasks.ruler.niah import DEPTHS, insert_at_depths, random_atom
from ropebench.tasks.ruler.scoring import StringMatchTask
from ropebench.tasks.ruler.words import random_key
from ropebench.tasks.synthetic import PromptOptions

NEEDLE = "{place} guards the code {value}."
BRIDGE = "The {key} was taken to {place}."
# Syllables of the invented place names: no English word is made of two of them.
SYLLABLES = ("zor", "vex", "quil", "mab", "thun", "dre", "kal", "yth", "oph", "wix", "brak", "zel")


def place_name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()


def nonliteral_draft(units: int, rng: random.Random, haystack: str, essay: str,
                     distractors: int = 0) -> Draft:
    """One prompt with `units` haystack units (noise lines or essay words): the needle and its
    bridge at two different places, and `distractors` other key -> place -> code chains, so the
    answer is not the only code in the text and only the hop tells which one it is."""
    keys, places, values = [], [], []
    while len(keys) < distractors + 1:
        key, place, value = random_key(rng), place_name(rng), random_atom("numbers", rng)
        if key not in keys and place not in places and value not in values:
            keys.append(key)
            places.append(place)
            values.append(value)
    statements = [s for key, place, value in zip(keys, places, values, strict=True)
                  for s in (NEEDLE.format(place=place, value=value),
                            BRIDGE.format(key=key, place=place))]
    rng.shuffle(statements)
    key, place, value = keys[0], places[0], values[0]
    if haystack == "essay":
        sentences = split_sentences(get_haystack(essay).first_words(units))
        context = insert_at_depths(sentences, statements, rng.sample(DEPTHS, len(statements)))
    else:
        lines = [NOISE_LINE] * units
        # Slots drawn with replacement: several statements may share one gap between lines.
        slots = sorted((rng.randrange(units + 1) for _ in statements), reverse=True)
        for index, statement in zip(slots, statements, strict=True):
            lines.insert(index, statement)
        context = "\n".join(lines)
    template = templates.single_answer(templates.NIAH_TEMPLATE)
    prefix = templates.single_answer(templates.NIAH_ANSWER_PREFIX)
    return Draft(
        text=template.format(type_needle_v="number", context=context, query=key),
        answer_prefix=prefix.format(type_needle_v="number", query=key),
        references=[value],
        answer=f" {value}.",
        metadata={"query": key, "place": place},
    )


@dataclass
class NolimaOptions(PromptOptions):
    max_new_tokens: int = setting(templates.NIAH_MAX_NEW, min=1)
    haystack: str = "essay"  # nolima_2's text: a haystack name or a folder
    distractors: int = setting(3, min=0)  # other key -> place -> code chains in the text


class NonLiteralNiah(StringMatchTask):
    """A single needle reached through one associative hop (see the module doc)."""

    group = "nolima"
    group_title = "NIAH, non-literal"
    report = "group"
    Options = NolimaOptions

    def __init__(self, name: str, haystack: str) -> None:
        self.name = name
        self.haystack_kind = haystack  # "noise" or "essay"
        self.description = (f"non-literal needle (NoLiMa-style) in a {haystack} haystack: the "
                            "question and the needle share no content word; one hop in the text")

    def layout(self, tokenizer, length: int, n: int, seed: int, options: NolimaOptions) -> Layout:
        kind, haystack = self.haystack_kind, options.haystack
        if kind == "essay":
            get_haystack(haystack)  # fail early, with the haystack's own message
        return Layout(
            lambda units, rng, _: nonliteral_draft(units, rng, kind, haystack, options.distractors),
            min_units=1, max_units=length, cache_key=(haystack, options.distractors),
        )

"""Needle-in-a-haystack grid (gkamradt/LLMTest_NeedleInAHaystack), scored deterministically.

Every (length, depth) cell asks for one 7-digit value hidden in natural text at the sentence
boundary before `depth` percent of the sentences. Sample k of every depth uses the same needle and
text, so the cells of one row differ only in where the needle sits. The prompt is RULER's
single-needle template; the score is whether the value appears in the answer. Rows carry
`metadata["depth"]`, ready for a depth x length heatmap.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ropebench.errors import RopebenchError
from ropebench.settings import setting
from ropebench.tasks.haystacks import get_haystack, split_sentences
from ropebench.tasks.prompting import Draft, Layout
from ropebench.tasks.ruler import templates
from ropebench.tasks.ruler.niah import insert_at_depths
from ropebench.tasks.ruler.scoring import StringMatchTask
from ropebench.tasks.ruler.words import random_key
from ropebench.tasks.synthetic import PromptOptions

MAX_NEW = 32


def grid_depths(count: int = 11, spacing: str = "linear") -> list[float]:
    """Depths in percent: evenly spaced, or sigmoid-spaced (denser near both ends) as gkamradt's."""
    if count < 2:
        raise RopebenchError(f"the needle grid needs at least 2 depths, got {count}")
    steps = [i / (count - 1) for i in range(count)]
    if spacing == "linear":
        return [round(100 * s, 2) for s in steps]
    if spacing == "sigmoid":
        # Logistic spacing over [-6, 6], rescaled to exactly 0..100.
        raw = [1 / (1 + math.exp(-12 * (s - 0.5))) for s in steps]
        lo, hi = raw[0], raw[-1]
        return [round(100 * (r - lo) / (hi - lo), 2) for r in raw]
    raise RopebenchError(f"depth spacing must be 'linear' or 'sigmoid', got {spacing!r}")


def grid_draft(units: int, rng: random.Random, *, depth: float, haystack: str) -> Draft:
    key, value = random_key(rng), str(rng.randint(10**6, 10**7 - 1))
    needle = templates.NEEDLE.format(type_needle_v="numbers", key=key, value=value)
    sentences = split_sentences(get_haystack(haystack).first_words(units))
    context = insert_at_depths(sentences, [needle], [depth])
    template, prefix = (
        templates.single_answer(templates.NIAH_TEMPLATE),
        templates.single_answer(templates.NIAH_ANSWER_PREFIX),
    )
    return Draft(
        text=template.format(type_needle_v="number", context=context, query=key),
        answer_prefix=prefix.format(type_needle_v="number", query=key),
        references=[value],
        answer=f" {value}.",
        metadata={"depth": depth, "query": key},
    )


@dataclass
class GridOptions(PromptOptions):
    max_new_tokens: int = setting(MAX_NEW, min=1)
    depths: list[float] | int = setting(11, min=0)  # a count (spaced by depth_spacing) or a list
    depth_spacing: str = setting("linear", choices=("linear", "sigmoid"))
    haystack: str = "essay"


class NeedleGrid(StringMatchTask):
    name = "niah"
    title = "Needle in a haystack"
    abbrev = "NIAH"
    report = "depth_grid"
    description = (
        "Needle-in-a-haystack grid: n samples per depth (options: depths, depth_spacing, haystack)"
    )
    Options = GridOptions

    def cost_hint(self, samples: int, options: dict) -> float:
        depths = options.get("depths", 11)  # one prompt per depth and sample
        return super().cost_hint(samples, options) * (depths if isinstance(depths, int) else len(depths))

    def layouts(self, tokenizer, length: int, n: int, seed: int, options: GridOptions) -> list[Layout]:
        """One layout per depth: sample k at depth j has index j * n + k."""
        depths = options.depths
        depth_list = grid_depths(depths, options.depth_spacing) if isinstance(depths, int) else list(depths)
        get_haystack(options.haystack)  # fail early, with the haystack's own message
        return [Layout(lambda units, rng, _, depth=depth: grid_draft(
                           units, rng, depth=depth, haystack=options.haystack),
                       min_units=1, max_units=length, cache_key=(options.haystack,))
                for depth in depth_list]

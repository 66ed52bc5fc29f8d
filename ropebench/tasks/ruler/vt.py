"""RULER variable tracking (NVIDIA/RULER, scripts/data/synthetic/variable_tracking.py)."""

from __future__ import annotations

import random
import string

from ropebench.tasks.base import Sample
from ropebench.tasks.haystacks import NOISE_LINE
from ropebench.tasks.prompting import Draft, build_samples
from ropebench.tasks.ruler import templates
from ropebench.tasks.ruler.scoring import RulerTask

HOPS = 4  # one chain of 5 variables
EXAMPLE_LENGTH = 500  # RULER builds its one-shot example at 500 tokens, with 3-letter names


def variable_names(rng: random.Random, count: int, letters: int) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choices(string.ascii_uppercase, k=letters))
        if name not in names:
            names.append(name)
    return names


def vt_draft(units: int, rng: random.Random, *, letters: int = 5, example: str = "") -> Draft:
    """A chain `VAR A = 12345`, `VAR B = VAR A `, ... hidden in order among `units` noise lines."""
    names = variable_names(rng, HOPS + 1, letters)
    value = str(rng.randint(10000, 99998))
    chain = [f"VAR {names[0]} = {value}"] + [
        f"VAR {names[j + 1]} = VAR {names[j]} " for j in range(HOPS)
    ]
    lines = [NOISE_LINE + "\n"] * units
    for j, position in enumerate(sorted(rng.sample(range(units), len(chain)))):
        lines.insert(position + j, chain[j])
    context = " ".join(lines).replace(". \n", ".\n")
    text = templates.VT_TEMPLATE.format(context=context, query=value)
    return Draft(
        text=example + "\n\n" + text if example else text,
        answer_prefix=templates.VT_ANSWER_PREFIX.format(num_v=HOPS + 1, query=value),
        references=names,
        answer=" ".join(names),
        metadata={"query": value},
    )


def render_example(draft: Draft) -> str:
    """The solved one-shot example as RULER writes it: prompt, answer prefix, space, the names."""
    return draft.text + draft.answer_prefix + " " + " ".join(draft.references)


class RulerVT(RulerTask):
    name = "vt"
    description = "RULER variable tracking: one chain of 5 assignments (4 hops) in noise, one-shot"

    def samples(
        self,
        tokenizer,
        length: int,
        n: int,
        seed: int,
        *,
        max_new_tokens: int = templates.VT_MAX_NEW,
        example_length: int = EXAMPLE_LENGTH,
        chat: bool | None = None,
        fill: str = "reference",
        count_bos: bool | None = None,
    ) -> list[Sample]:
        # The example's noise count is fitted once at `example_length` tokens (no chat wrapper);
        # each sample then draws its own example of that size with fresh names.
        example_units = 0
        if example_length > 0:
            (fitted,) = build_samples(
                "vt_example",
                lambda units, rng, _: vt_draft(units, rng, letters=3),
                tokenizer,
                example_length,
                1,
                seed,
                max_new_tokens=max_new_tokens,
                metric="all",
                min_units=HOPS + 1,
                max_units=example_length,
                chat=False,
                fill="tight",
            )
            example_units = fitted.metadata["units"]

        def builder(units: int, rng: random.Random, _: int) -> Draft:
            example = ""
            if example_units:
                example = render_example(vt_draft(example_units, rng, letters=3))
            return vt_draft(units, rng, example=example)

        return build_samples(
            self.name,
            builder,
            tokenizer,
            length,
            n,
            seed,
            max_new_tokens=max_new_tokens,
            metric="all",
            min_units=HOPS + 1,
            max_units=length,
            chat=chat,
            cache_key=(example_length,),
            fill=fill,
            step=10 if length >= 4096 else 5,  # RULER: 10 noise lines (5 below 4K)
            count_bos=count_bos,
        )


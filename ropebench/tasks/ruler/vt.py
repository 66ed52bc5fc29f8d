"""RULER variable tracking (NVIDIA/RULER, scripts/data/synthetic/variable_tracking.py).

Two layouts of the noise haystack:
- "reference" (the current reference): one noise sentence or one `VAR` statement per line;
- "2024" (the layout RULER's paper was measured with): lines joined by spaces, so each statement
  runs on into the next noise line.
The one-shot example, "reference": fitted once to `example_length` tokens with the value 12345
and 3-letter names, then reused by every sample with its names and value re-drawn (the chain keeps
its places); "fresh": a new example of that size per sample.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, replace

from ropebench.settings import setting
from ropebench.tasks.haystacks import NOISE_LINE
from ropebench.tasks.prompting import (
    FILLS,
    Budget,
    Draft,
    Layout,
    ReferenceSearch,
    build_samples,
    count_tokens,
)
from ropebench.tasks.ruler import templates
from ropebench.tasks.ruler.scoring import RulerTask
from ropebench.tasks.synthetic import PromptOptions

HOPS = 4  # one chain of 5 variables
EXAMPLE_LENGTH = 500  # RULER builds its one-shot example at 500 tokens, with 3-letter names
EXAMPLE_VALUE = "12345"  # the value the reference fits its example with
LAYOUTS = ("reference", "2024")
EXAMPLES = ("reference", "fresh")


@dataclass
class VtOptions(PromptOptions):
    # Declared in this order, the order a report lists the choices samples record.
    max_new_tokens: int = setting(templates.VT_MAX_NEW, min=1)
    example_length: int = setting(EXAMPLE_LENGTH, min=0)  # tokens of the one-shot example (0: none)
    layout: str = setting("reference", choices=LAYOUTS)
    example: str = setting("reference", choices=EXAMPLES)
    fill: str = setting("reference", choices=FILLS)
    count_bos: bool = False


def variable_names(rng: random.Random, count: int, letters: int) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = "".join(rng.choices(string.ascii_uppercase, k=letters))
        if name not in names:
            names.append(name)
    return names


@dataclass(frozen=True)
class Chain:
    """Where a chain sits among `units` noise lines, and its names and value."""
    units: int
    positions: tuple[int, ...]  # sorted noise-line indices, one per statement
    names: tuple[str, ...]
    value: str

    def renamed(self, rng: random.Random) -> Chain:
        names = variable_names(rng, len(self.names), len(self.names[0]))
        return Chain(self.units, self.positions, tuple(names), str(rng.randint(10000, 99998)))


def draw_chain(units: int, rng: random.Random, letters: int, value: str | None = None) -> Chain:
    names = variable_names(rng, HOPS + 1, letters)
    value = value or str(rng.randint(10000, 99998))
    positions = tuple(sorted(rng.sample(range(units), HOPS + 1)))
    return Chain(units, positions, tuple(names), value)


def render(chain: Chain, layout: str) -> Draft:
    """The prompt: noise lines with the chain's statements in order."""
    names = chain.names
    statements = [f"VAR {names[0]} = {chain.value}"] + [
        f"VAR {names[j + 1]} = VAR {names[j]} " for j in range(HOPS)
    ]
    if layout == "reference":
        lines = [NOISE_LINE] * chain.units
        for j, position in enumerate(chain.positions):
            lines.insert(position + j, statements[j])
        context = "\n".join(lines)
    else:
        lines = [NOISE_LINE + "\n"] * chain.units
        for j, position in enumerate(chain.positions):
            lines.insert(position + j, statements[j])
        context = " ".join(lines).replace(". \n", ".\n")
    text = templates.VT_TEMPLATE.format(context=context, query=chain.value)
    return Draft(
        text=text,
        answer_prefix=templates.VT_ANSWER_PREFIX.format(num_v=HOPS + 1, query=chain.value),
        references=list(names),
        answer=" ".join(names),
        metadata={"query": chain.value},
    )


def render_example(draft: Draft) -> str:
    """The solved one-shot example as RULER writes it: prompt, answer prefix, space, the names."""
    return draft.text + draft.answer_prefix + " " + " ".join(draft.references)


class RulerVT(RulerTask):
    name = "vt"
    description = "RULER variable tracking: one chain of 5 assignments (4 hops) in noise, one-shot"
    Options = VtOptions

    def layout(self, tokenizer, length: int, n: int, seed: int, options: VtOptions) -> Layout:
        fitted = self.example_chain(tokenizer, seed, options)
        layout, example = options.layout, options.example

        def task_only(units: int, rng: random.Random, _: int) -> Draft:
            draft = render(draw_chain(units, rng, 5), layout)
            draft.metadata["layout"] = layout
            return draft

        def builder(units: int, rng: random.Random, index: int) -> Draft:
            draft = task_only(units, rng, index)
            if fitted is None:
                return draft
            # As the reference: the task's chain is drawn first, then the example's names.
            chain = fitted.renamed(rng) if example == "reference" else draw_chain(fitted.units, rng, 3)
            shot = render_example(render(chain, layout))
            return replace(draft, text=shot + "\n\n" + draft.text,
                           metadata={**draft.metadata, "example": example})

        # The reference searches with the task text alone (so the tokens per noise line are the
        # task's) and adds the example's tokens, with the newline that follows it, to each probe.
        example_tokens = 0 if fitted is None else count_tokens(
            tokenizer, render_example(render(fitted, layout)) + "\n")
        return Layout(builder, min_units=HOPS + 1, max_units=length,
                      step=10 if length >= 4096 else 5,  # RULER: 10 noise lines (5 below 4K)
                      cache_key=(options.example_length, layout, example),
                      search=ReferenceSearch(builder=task_only, extra_tokens=example_tokens))

    def example_chain(self, tokenizer, seed: int, options: VtOptions) -> Chain | None:
        """The one-shot example's chain, fitted once at `example_length` tokens without a chat
        wrapper; the reference counts no generated tokens for it and fits it with the value
        12345. None without an example."""
        if options.example_length <= 0:
            return None
        reference = options.example == "reference"
        drawn: list[Chain] = []

        def example_builder(units: int, rng: random.Random, _: int) -> Draft:
            drawn.append(draw_chain(units, rng, 3, EXAMPLE_VALUE if reference else None))
            return render(drawn[-1], options.layout)

        budget = Budget(options.example_length, 0 if reference else options.max_new_tokens,
                        chat=False, fill=options.fill, count_bos=options.count_bos)
        build_samples("vt_example", tokenizer, 1, seed, budget,
                      Layout(example_builder, min_units=HOPS + 1, max_units=options.example_length,
                             step=5, cache_key=(options.layout, options.example)))
        return drawn[-1]  # the last draw is the one that was kept

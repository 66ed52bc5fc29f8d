"""Synthetic tasks: prompts drawn from a generator and fitted to each length's token budget.

A `SyntheticTask` declares its options (a `PromptOptions` dataclass: types, bounds, choices) and
says how its prompts grow (`layout`: a builder of drafts from a number of haystack units, and the
range and step of that number); fitting them to the budget (`prompting.build_samples`) is done
here, once for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ropebench.settings import check_choices, setting
from ropebench.tasks.base import GenerativeTask, Sample
from ropebench.tasks.prompting import FILLS, Budget, Layout, build_samples, uses_chat


@dataclass
class PromptOptions:
    """Options every synthetic task takes; a task redeclares `max_new_tokens` with its default.
    A report lists the choices samples record in the order their task declares them."""

    max_new_tokens: int = setting(32, min=1)  # tokens generated per answer
    chat: bool | None = None  # wrap prompts in the chat template (None: when the tokenizer has one)

    def __post_init__(self) -> None:
        check_choices(self, "option")  # values given in code (`samples(...)`) are checked too


@dataclass
class FillOptions(PromptOptions):
    """How RULER's tasks fill the budget (see `prompting`)."""

    fill: str = setting("reference", choices=FILLS)  # RULER's own fill, or ropebench's tight one


@dataclass
class RulerOptions(FillOptions):
    count_bos: bool = False  # the BOS token counts against the budget (RULER does not count it)


class SyntheticTask(GenerativeTask):
    """A generative task whose samples `build_samples` fits to the budget: a subclass declares
    `Options` and implements `layout`."""

    Options: type = PromptOptions

    def layout(self, tokenizer, length: int, n: int, seed: int, options: Any) -> Layout:
        """How this task's prompts grow at `length` with these options (an `Options`)."""
        raise NotImplementedError

    def layouts(self, tokenizer, length: int, n: int, seed: int, options: Any) -> list[Layout]:
        """One layout per block of `n` samples (the needle grid has one per depth)."""
        return [self.layout(tokenizer, length, n, seed, options)]

    def samples(self, tokenizer, length: int, n: int, seed: int, **options: Any) -> list[Sample]:
        return self.make_samples(tokenizer, length, n, seed, self.Options(**options))

    def make_samples(self, tokenizer, length: int, n: int, seed: int, options: Any) -> list[Sample]:
        """Sample k of block j gets index j * n + k."""
        budget = Budget(length, options.max_new_tokens, uses_chat(tokenizer, options.chat),
                        getattr(options, "fill", "tight"), getattr(options, "count_bos", False))
        out: list[Sample] = []
        for block, layout in enumerate(self.layouts(tokenizer, length, n, seed, options)):
            for sample in build_samples(self.name, tokenizer, n, seed, budget, layout):
                sample.index += block * n
                out.append(sample)
        return out

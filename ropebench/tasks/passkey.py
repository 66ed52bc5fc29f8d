"""Passkey retrieval as in the YaRN and landmark-attention evaluations (task `passkey`)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from ropebench.settings import setting
from ropebench.tasks.base import Sample
from ropebench.tasks.haystacks import NOISE_LINE
from ropebench.tasks.prompting import Draft, Layout, uses_chat
from ropebench.tasks.synthetic import PromptOptions, SyntheticTask

# Benchmark text of the passkey test (landmark attention / YaRN `passkey.py`).
DESCRIPTION = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
    "I will quiz you about the important information there."
)
INFORMATION = "The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = "What is the pass key?"
# The cue that starts the answer. It goes after the question without a chat template and opens
# the assistant's turn with one (as RULER's answer prefixes do), so a chat model continues it
# instead of starting a fresh reply.
ANSWER_CUE = "The pass key is"
MAX_NEW = 10
_FIRST_INTEGER = re.compile(r"\d+")


def passkey_draft(garbage_chars: int, rng: random.Random, chat: bool = False) -> Draft:
    """`garbage_chars` characters of noise split at a uniform point around the key sentence."""
    garbage = " ".join([NOISE_LINE] * (garbage_chars // len(NOISE_LINE) + 1))
    before = rng.randint(0, garbage_chars)
    key = str(rng.randint(1, 50000))
    lines = [
        DESCRIPTION,
        garbage[:before],
        INFORMATION.format(key=key),
        garbage[: garbage_chars - before],
        QUESTION,
    ]
    return Draft(
        text="\n".join(lines),
        answer_prefix=ANSWER_CUE if chat else f" {ANSWER_CUE}",
        references=[key],
        answer=f" {key}.",
        metadata={"depth": round(100 * before / max(garbage_chars, 1), 1)},
    )


def first_integer(prediction: str) -> str | None:
    match = _FIRST_INTEGER.search(prediction)
    return match.group(0) if match else None


@dataclass
class PasskeyOptions(PromptOptions):
    max_new_tokens: int = setting(MAX_NEW, min=1)


class Passkey(SyntheticTask):
    name = "passkey"
    title = "Passkey retrieval (%)"
    stop_at_newline = True
    description = "Passkey retrieval (YaRN / landmark style): a 1..50000 key hidden in noise"
    Options = PasskeyOptions

    def layout(self, tokenizer, length: int, n: int, seed: int, options: PasskeyOptions) -> Layout:
        chat = uses_chat(tokenizer, options.chat)
        return Layout(lambda units, rng, _: passkey_draft(units, rng, chat), min_units=0,
                      max_units=32 * length, metric="passkey")

    def score(self, sample: Sample, prediction: str) -> float:
        """1 when the first integer of the answer is the key."""
        return float(first_integer(prediction) == sample.references[0])

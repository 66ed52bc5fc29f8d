"""Needle-driven perplexity, the LongRoPE2 search fitness (LongRoPE2 paper, section 3.2).

Each document is exactly `length` tokens: an intro saying a magic number is hidden, the needle
(at the start as in the paper, or at spread depths as in the released builder), natural text, the
question, and the answer sentence ending in the number. Only the number's tokens are scored, so
the value measures retrieval across the whole window rather than local fluency.

Built for thousands of calls: the documents are tokenized once in `__init__`; `score(backend)`
costs one forward per document and applies the output head to the answer positions only.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

from ropebench.backends.base import Backend
from ropebench.errors import RopebenchError
from ropebench.settings import setting
from ropebench.tasks.base import MeasuredTask, Row
from ropebench.tasks.haystacks import get_haystack
from ropebench.tasks.ruler.words import random_key

INTRO = (
    "There is a special magic number hidden inside a lot of irrelevant text. Find it and memorize "
    "it. I will quiz you about the special magic number there.\n"
)
NEEDLE = "One of the special magic numbers for {key} is: {value}.\n"
QUESTION = "\nWhat is the special magic number for {key} mentioned in the provided text?"
ANSWER = " The special magic number for {key} mentioned in the provided text is"
RELEASED_DEPTHS = 10  # the released builder spreads needles over 10 depths


@dataclass
class NeedleDocument:
    input_ids: list[int]  # exactly `length` tokens
    answer_start: int  # the number's tokens are input_ids[answer_start:]
    key: str
    value: str
    depth: float  # percent of the natural text before the needle


def answer_tokens(tokenizer, prefix: str, answer: str) -> tuple[list[int], int]:
    """Tokens of `prefix + answer` and where the answer's scored tokens begin.

    Tokenized together, so the split respects how the tokenizer merges across the boundary. Only
    tokens that carry the answer's digits are scored: a leading token that decodes to white space
    alone (the space before the number, in tokenizers that split it off) is left out.
    """
    full = tokenizer(prefix + answer, add_special_tokens=False)["input_ids"]
    alone = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    shared = 0
    while shared < min(len(full), len(alone)) and full[shared] == alone[shared]:
        shared += 1
    while shared < len(full) - 1 and not any(
        ch.isdigit() for ch in tokenizer.decode(full[shared : shared + 1])
    ):
        shared += 1
    return full, shared


class NeedlePPL:
    """`NeedlePPL(tokenizer, length, documents).score(backend)` -> exp(mean over documents of each
    document's mean answer NLL), as the released `compute_perplexity`.

    `first` numbers the documents from there: sets with different `first` (and the same seed) are
    disjoint, which is how a search reads its baselines' spread over other document sets.
    """

    def __init__(
        self,
        tokenizer,
        length: int,
        documents: int,
        seed: int = 0,
        haystack: str = "pydoc",
        *,
        needle_position: str = "start",
        first: int = 0,
    ) -> None:
        if needle_position not in ("start", "depths"):
            raise RopebenchError(
                f"needle_position must be 'start' or 'depths', got {needle_position!r}"
            )
        if documents < 1:
            raise RopebenchError(f"needle_ppl needs at least one document, got {documents}")
        self.length = length
        self.documents = [
            self._document(
                tokenizer,
                length,
                random.Random(f"{seed}:needle_ppl:{length}:{i}"),
                i,
                documents,
                haystack,
                needle_position,
            )
            for i in range(first, first + documents)
        ]

    @staticmethod
    def _document(
        tokenizer, length, rng, index, documents, haystack, needle_position
    ) -> NeedleDocument:
        key, value = random_key(rng), str(rng.randint(10**6, 10**7 - 1))
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        intro = tokenizer(INTRO, add_special_tokens=False)["input_ids"]
        needle = tokenizer(NEEDLE.format(key=key, value=value), add_special_tokens=False)[
            "input_ids"
        ]
        tail, answer_at = answer_tokens(
            tokenizer, QUESTION.format(key=key) + ANSWER.format(key=key), " " + value
        )
        n_text = length - len(bos) - len(intro) - len(needle) - len(tail)
        if n_text < 1:
            raise RopebenchError(
                f"needle_ppl documents need more than {length} tokens; use a longer length"
            )
        stack = get_haystack(haystack)
        stream = stack.token_stream(tokenizer)
        text = stack.token_window(tokenizer, rng.randrange(len(stream)), n_text)
        depth = (
            0.0
            if needle_position == "start"
            else 100 * (index % RELEASED_DEPTHS) / (RELEASED_DEPTHS - 1)
        )
        cut = int(n_text * depth / 100)
        ids = bos + intro + text[:cut] + needle + text[cut:] + tail
        return NeedleDocument(ids, len(ids) - len(tail) + answer_at, key, value, depth)

    def score(self, backend: Backend) -> float:
        """exp of the mean over documents of each document's mean answer NLL: one document with
        a huge perplexity does not dominate, as it would in a mean of perplexities."""
        return fitness_of(self.document_scores(backend))

    def document_scores(self, backend: Backend) -> list[tuple[float, float, int]]:
        """Per document: the answer's perplexity, its summed NLL and its token count."""
        spans = [backend.nll(doc.input_ids, doc.answer_start) for doc in self.documents]
        return [(math.exp(span.mean), span.total, span.count) for span in spans]


def fitness_of(documents: list[tuple[float, float, int]]) -> float:
    """exp(mean over documents of summed NLL / token count) from `document_scores` rows."""
    return math.exp(sum(nll / count for _, nll, count in documents) / len(documents))


@dataclass
class NeedlePPLOptions:
    haystack: str = "pydoc"
    needle_position: str = setting("start", choices=("start", "depths"))


class NeedlePPLTask(MeasuredTask):
    name = "needle_ppl"
    unit = "perplexity"
    title = "Needle-driven perplexity"
    abbrev = "needle PPL"
    per_document = "mean_ppl"
    Options = NeedlePPLOptions
    description = (
        "Needle-driven perplexity (LongRoPE2 search fitness; options: haystack, needle_position)"
    )

    def measure(
        self, backend: Backend, length: int, *, samples: int, seed: int, options: dict[str, Any]
    ) -> list[Row]:
        haystack = options.get("haystack", "pydoc")
        position = options.get("needle_position", self.Options.needle_position)
        start = time.perf_counter()
        documents = NeedlePPL(
            backend.tokenizer, length, samples, seed, haystack, needle_position=position
        ).document_scores(backend)
        ppls = [ppl for ppl, _, _ in documents]
        value = sum(ppls) / len(ppls)
        seconds = time.perf_counter() - start
        return [self.value_row(
            length, value, seconds, documents=samples, haystack=haystack,
            needle_position=position,
            document_ppl=[round(ppl, 6) for ppl in ppls],
            document_nll=[round(nll, 6) for _, nll, _ in documents],
            document_tokens=[n for _, _, n in documents],
        )]


@dataclass
class NeedlePPLDepthsOptions(NeedlePPLOptions):
    needle_position: str = setting("depths", choices=("start", "depths"))


class NeedlePPLDepthsTask(NeedlePPLTask):
    """The same measure with the needle at 10 depths (the released builders), so one plan can
    report the needle at the start and through the window side by side."""

    name = "needle_ppl_depths"
    title = "Needle-driven perplexity, needles at depths"
    abbrev = "needle PPL (depths)"
    Options = NeedlePPLDepthsOptions
    description = "Needle-driven perplexity with the needle at 10 depths (options: haystack)"

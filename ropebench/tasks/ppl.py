"""Perplexity versus context length, sliding-window or truncated (YaRN / LongRoPE evaluation style).

Documents are windows of a haystack's token stream (BOS first), spread evenly over the stream so
every method and length sees the same text. Truncate mode: one window of `length` tokens per
document, every token after the first scored. Sliding mode: windows of `length` tokens every
`stride` tokens over a document of `document_tokens`, each window scoring only the tokens the
previous one did not. PPL = exp(mean NLL over all scored tokens).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from ropebench.backends.base import Backend
from ropebench.errors import RopebenchError
from ropebench.settings import MAX_TOKENS, setting
from ropebench.tasks.base import MeasuredTask, Row
from ropebench.tasks.haystacks import get_haystack


def long_documents(
    tokenizer, n_tokens: int, documents: int, haystack: str = "pydoc"
) -> list[list[int]]:
    """`documents` token lists of exactly `n_tokens` (BOS included when the tokenizer has one)."""
    stack = get_haystack(haystack)
    stream_len = len(stack.token_stream(tokenizer))
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    step = max(1, stream_len // max(documents, 1))
    return [
        bos + stack.token_window(tokenizer, k * step, n_tokens - len(bos)) for k in range(documents)
    ]


def window_spans(n_tokens: int, length: int, stride: int | None) -> list[tuple[int, int, int]]:
    """(begin, end, first_target) per window: the window is tokens [begin, end) and it scores
    tokens [first_target, end), which no earlier window scored."""
    if stride is None:
        return [(0, min(length, n_tokens), 1)]
    spans, scored_until = [], 1
    for begin in range(0, n_tokens, stride):
        end = min(begin + length, n_tokens)
        spans.append((begin, end, max(scored_until, begin + 1)))
        scored_until = end
        if end == n_tokens:
            break
    return spans


def document_perplexities(
    backend: Backend,
    length: int,
    *,
    documents: int,
    stride: int | None = None,
    haystack: str = "pydoc",
    document_tokens: int | None = None,
) -> tuple[float, list[tuple[float, int]]]:
    """exp(mean NLL) over `documents` documents, windows of `length` tokens (see module doc), and
    per document its summed NLL and scored-token count (what a report bootstraps over)."""
    if stride is not None and not 0 < stride <= length:
        raise RopebenchError(f"stride must be in 1..{length} (the window), got {stride}")
    n_tokens = document_tokens or (length if stride is None else 2 * length)
    total, count, per_document = 0.0, 0, []
    for ids in long_documents(backend.tokenizer, n_tokens, documents, haystack):
        doc_total, doc_count = 0.0, 0
        for begin, end, first in window_spans(n_tokens, length, stride):
            span = backend.nll(ids[begin:end], first - begin)
            total, count = total + span.total, count + span.count
            doc_total, doc_count = doc_total + span.total, doc_count + span.count
        per_document.append((doc_total, doc_count))
    return math.exp(total / count), per_document


def perplexity(backend: Backend, length: int, **options: Any) -> float:
    """exp(mean NLL) over the documents (`document_perplexities` without the per-document list)."""
    return document_perplexities(backend, length, **options)[0]


@dataclass
class PerplexityOptions:
    stride: int | None = setting(None, min=1, max=MAX_TOKENS)  # None: one truncated window per document
    haystack: str = "pydoc"
    document_tokens: int | None = setting(None, min=2, max=MAX_TOKENS)


class PerplexityTask(MeasuredTask):
    name = "ppl"
    unit = "perplexity"
    title = "Perplexity"
    abbrev = "PPL"
    per_document = "pooled_nll"
    Options = PerplexityOptions
    description = "Perplexity at each length (options: stride, haystack, document_tokens)"

    def measure(
        self, backend: Backend, length: int, *, samples: int, seed: int, options: dict[str, Any]
    ) -> list[Row]:
        stride = options.get("stride")
        haystack = options.get("haystack", "pydoc")
        start = time.perf_counter()
        value, per_document = document_perplexities(
            backend,
            length,
            documents=samples,
            stride=stride,
            haystack=haystack,
            document_tokens=options.get("document_tokens"),
        )
        seconds = time.perf_counter() - start
        return [self.value_row(
            length, value, seconds, documents=samples, stride=stride, haystack=haystack,
            document_nll=[round(nll, 6) for nll, _ in per_document],
            document_tokens=[n for _, n in per_document],
            document_ppl=[round(math.exp(nll / n), 6) for nll, n in per_document],
        )]

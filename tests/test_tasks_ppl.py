"""Perplexity and needle-driven perplexity: exactness against full logits, and what is scored."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_llama

from ropebench.backends.hf import HFBackend
from ropebench.errors import RopebenchError
from ropebench.tasks.needle_ppl import NeedlePPL, answer_tokens
from ropebench.tasks.ppl import long_documents, perplexity, window_spans


@pytest.fixture(scope="module")
def model():
    return tiny_llama(window=256, seed=3)


def full_logits_nll(model, ids: torch.Tensor, first: int, last: int) -> float:
    logits = model(input_ids=ids).logits[0].float()  # (T, V)
    return F.cross_entropy(logits[first - 1 : last - 1], ids[0, first:last], reduction="sum").item()


def test_backend_nll_matches_full_logits(model, monkeypatch):
    ids = torch.randint(3, 384, (1, 300))
    monkeypatch.setattr("ropebench.backends.hf.HEAD_CHUNK", 64)  # exercise the chunking
    backend = HFBackend(model, None)
    whole = backend.nll(ids[0].tolist(), 1)
    assert whole.count == 299
    assert whole.total == pytest.approx(full_logits_nll(model, ids, 1, 300), rel=1e-5)
    span = backend.nll(ids[0].tolist(), 250, 280)
    part, n = span.total, span.count
    assert span.mean == pytest.approx(part / n, rel=1e-5)
    assert n == 30 and part == pytest.approx(full_logits_nll(model, ids, 250, 280), rel=1e-5)


def test_window_spans_score_every_token_once():
    assert window_spans(100, 100, None) == [(0, 100, 1)]
    spans = window_spans(300, 128, 64)
    scored = [t for _, end, first in spans for t in range(first, end)]
    assert scored == list(range(1, 300))
    assert all(end - begin <= 128 for begin, end, _ in spans)


def test_truncate_perplexity_equals_hf_loss(model, tok):
    (doc,) = long_documents(tok, 200, 1)
    ids = torch.tensor([doc])
    expected = math.exp(model(input_ids=ids, labels=ids).loss.item())
    assert perplexity(HFBackend(model, tok), 200, documents=1) == pytest.approx(expected, rel=1e-4)


def test_sliding_perplexity_runs_and_checks_stride(model, tok):
    value = perplexity(HFBackend(model, tok), 128, documents=2, stride=64)
    assert 1 < value < 1000
    with pytest.raises(RopebenchError, match="stride"):
        perplexity(HFBackend(model, tok), 128, documents=1, stride=200)


def test_documents_have_exact_length_and_bos(tok):
    docs = long_documents(tok, 333, 3)
    assert [len(d) for d in docs] == [333] * 3
    assert all(d[0] == tok.bos_token_id for d in docs)
    assert docs[0] != docs[1]


def test_answer_tokens_split_at_the_boundary(tok):
    full, at = answer_tokens(tok, "The number is", " 1234567")
    assert tok.decode(full[at:]).strip() == "1234567"
    assert tok.decode(full[:at]) == "The number is" or tok.decode(full[:at]).startswith(
        "The number is"
    )


@pytest.mark.parametrize("position", ["start", "depths"])
def test_needle_documents_are_exactly_length_and_score_only_the_number(tok, position):
    scorer = NeedlePPL(tok, 600, 3, seed=1, needle_position=position)
    for doc in scorer.documents:
        assert len(doc.input_ids) == 600
        assert tok.decode(doc.input_ids[doc.answer_start :]).strip() == doc.value
        text = tok.decode(doc.input_ids)
        assert text.count(f"One of the special magic numbers for {doc.key} is: {doc.value}.") == 1
        assert text.rstrip().endswith(f"mentioned in the provided text is {doc.value}")
    if position == "depths":
        assert [d.depth for d in scorer.documents] == pytest.approx([0, 100 / 9, 200 / 9])


def test_needle_ppl_equals_manual_answer_only_perplexity(tok, model):
    scorer = NeedlePPL(tok, 600, 2, seed=5)
    manual = []
    for doc in scorer.documents:
        ids = torch.tensor([doc.input_ids])
        logits = model(input_ids=ids).logits[0]
        nll = F.cross_entropy(logits[doc.answer_start - 1 : -1], ids[0, doc.answer_start :])
        manual.append(nll.item())
    # The fitness is exp of the mean over documents of each document's mean answer NLL.
    assert scorer.score(HFBackend(model, tok)) == pytest.approx(math.exp(sum(manual) / 2), rel=1e-4)


def test_needle_ppl_rejects_a_length_too_short(tok):
    with pytest.raises(RopebenchError):
        NeedlePPL(tok, 64, 1)


@pytest.mark.parametrize("stride", [None, 16])
def test_ppl_row_keeps_its_score_and_adds_per_document_values(model, tok, stride):
    from ropebench.tasks.ppl import PerplexityTask

    backend = HFBackend(model, tok)
    options = {} if stride is None else {"stride": stride}
    [row] = PerplexityTask().measure(backend, 32, samples=3, seed=0, options=options)
    assert row.score == perplexity(backend, 32, documents=3, stride=stride)
    meta = row.metadata
    assert len(meta["document_nll"]) == len(meta["document_tokens"]) == len(meta["document_ppl"]) == 3
    pooled = math.exp(sum(meta["document_nll"]) / sum(meta["document_tokens"]))
    assert pooled == pytest.approx(row.score, rel=1e-5)


def test_needle_ppl_row_keeps_its_score_and_adds_per_document_values(model, tok):
    from ropebench.tasks.needle_ppl import NeedlePPLTask

    backend = HFBackend(model, tok)
    [row] = NeedlePPLTask().measure(backend, 600, samples=3, seed=0, options={})
    # The evaluation row is the mean of per-document perplexities (its intervals bootstrap
    # over them); the search fitness on the same documents is exp(mean NLL), never larger.
    assert row.score >= NeedlePPL(tok, 600, 3, 0).score(backend) - 1e-9
    assert len(row.metadata["document_ppl"]) == 3
    assert sum(row.metadata["document_ppl"]) / 3 == pytest.approx(row.score, rel=1e-5)
    assert all(n >= 1 for n in row.metadata["document_tokens"])

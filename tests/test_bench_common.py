"""The benchmarks' FLOP counter and growth exponent: the efficiency figures rest on them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from helpers import complete, tiny_llama, tiny_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from _common import FlopCounter, growth_exponent  # noqa: E402


def test_prefill_flops_match_the_formula():
    model = tiny_llama(hidden_size=64, layers=2, heads=4, vocab_size=384, window=256)
    counter = FlopCounter(model)
    tokens = 100
    with counter.counting(), torch.inference_mode():
        model(input_ids=torch.randint(3, 384, (1, tokens)))
    # Weights: q, k, v, o (64 x 64 each) and the MLP (3 x 64 x 128) per layer, 2 FLOPs per MAC.
    weights = 2 * 2 * (4 * 64 * 64 + 3 * 64 * 128)
    attention = 4 * 2 * 4 * 16 * tokens * (tokens + 1) // 2  # causal pairs, head_dim 16
    head = 2 * 64 * 384 * tokens
    assert counter.flops == weights * tokens + attention + head


def test_both_engines_do_the_same_useful_work():
    """Padding in `model.generate`'s batch is not useful work: both engines count the same."""
    model = tiny_llama(window=256, seed=1)
    tok = tiny_tokenizer()
    texts = ["A short one.", "A somewhat longer prompt with more words in it. " * 3]
    counts = {}
    for engine in ("hf", "fast"):
        counter = FlopCounter(model)
        with counter.counting():
            complete(model, tok, texts, 5, batch_size=2, engine=engine)
        counts[engine] = counter.flops
    assert counts["fast"] == pytest.approx(counts["hf"], rel=0.02)


def test_growth_exponent():
    assert growth_exponent([1, 2, 4], [3, 6, 12]) == pytest.approx(1.0)
    assert growth_exponent([1, 2, 4], [1, 4, 16]) == pytest.approx(2.0)

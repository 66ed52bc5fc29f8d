"""The mixed-window rotary module and packed masks against separate per-document forwards."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_llama

from ropebench.methods import get_extender
from ropebench.model.mixed import (
    install_mixed_rotary,
    long_tokens,
    packed_causal_mask,
    sequence_ids,
)
from ropebench.model.patch import apply_scaling, spec_of

WINDOW, TARGET = 32, 128


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup():
    model = tiny_llama(window=WINDOW, layers=2, hidden_size=64, heads=4, kv_heads=2)
    spec = spec_of(model)
    scaling = get_extender("longrope2").rescale(spec, TARGET)
    apply_scaling(model, scaling)
    return model, scaling


def _logits(model, ids, positions=None, mask=None):
    with torch.no_grad():
        return model(input_ids=ids, position_ids=positions, attention_mask=mask, use_cache=False).logits


def test_sequence_ids_and_long_tokens():
    pos = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5, 6, 0, 1]])
    assert sequence_ids(pos).tolist() == [[0, 0, 0, 1, 1, 2, 2, 2, 2], [0, 0, 0, 0, 0, 0, 0, 1, 1]]
    # A sequence is long iff its last position + 1 exceeds the window (here 4).
    assert long_tokens(pos, 4).tolist() == [[False] * 9, [True] * 7 + [False] * 2]
    mask = packed_causal_mask(pos)
    assert mask.shape == (2, 1, 9, 9)
    assert mask[0, 0, 4].tolist() == [False, False, False, True, True] + [False] * 4
    assert mask[1, 0, 6, :7].all() and not mask[1, 0, 8, :7].any()


def test_short_row_equals_separate_documents(setup):
    model, scaling = setup
    gen = torch.Generator().manual_seed(0)
    docs = [torch.randint(3, 384, (n,), generator=gen) for n in (20, 32, 9)]  # each <= window
    ids = torch.cat(docs)[None]  # [1, 61]
    positions = torch.cat([torch.arange(len(d)) for d in docs])[None]
    install_mixed_rotary(model, scaling)
    try:
        packed = _logits(model, ids, positions, packed_causal_mask(positions))[0]
    finally:
        apply_scaling(model, scaling)
    # Reference: each document alone through transformers' own longrope module (short factors).
    separate = torch.cat([_logits(model, d[None])[0] for d in docs])
    torch.testing.assert_close(packed, separate, rtol=1e-4, atol=1e-4)


def test_short_rows_use_the_original_rope_when_m_is_one():
    """Unit short factors and no attention temperature: short rows are the pretrained model."""
    original = tiny_llama(window=WINDOW, layers=2, hidden_size=64, heads=4, seed=3)
    model = tiny_llama(window=WINDOW, layers=2, hidden_size=64, heads=4, seed=3)
    scaling = get_extender("longrope2", {"attention_factor": 1.0}).rescale(spec_of(model), TARGET)
    apply_scaling(model, scaling)
    install_mixed_rotary(model, scaling)
    gen = torch.Generator().manual_seed(4)
    docs = [torch.randint(3, 384, (n,), generator=gen) for n in (12, 25)]
    positions = torch.cat([torch.arange(len(d)) for d in docs])[None]
    packed = _logits(model, torch.cat(docs)[None], positions, packed_causal_mask(positions))[0]
    separate = torch.cat([_logits(original, d[None])[0] for d in docs])
    torch.testing.assert_close(packed, separate, rtol=1e-4, atol=1e-4)


def test_long_row_equals_the_long_factor_model(setup):
    model, scaling = setup
    ids = torch.randint(3, 384, (1, TARGET), generator=torch.Generator().manual_seed(1))
    expected = _logits(model, ids)  # HF longrope: long factors for the whole sequence
    install_mixed_rotary(model, scaling)
    try:
        positions = torch.arange(TARGET)[None]
        got = _logits(model, ids, positions, packed_causal_mask(positions))
    finally:
        apply_scaling(model, scaling)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_batch_mixes_short_and_long_rows(setup):
    """One batch, one short-document row and one long row: each matches its own reference."""
    model, scaling = setup
    gen = torch.Generator().manual_seed(2)
    long_ids = torch.randint(3, 384, (TARGET,), generator=gen)
    docs = [torch.randint(3, 384, (n,), generator=gen) for n in (30, 30, 30, 30, 8)]
    short_ids = torch.cat(docs)
    short_pos = torch.cat([torch.arange(len(d)) for d in docs])
    ids = torch.stack([short_ids, long_ids])  # [2, 128]
    positions = torch.stack([short_pos, torch.arange(TARGET)])
    long_ref = _logits(model, long_ids[None])[0]
    short_ref = torch.cat([_logits(model, d[None])[0] for d in docs])
    install_mixed_rotary(model, scaling)
    try:
        got = _logits(model, ids, positions, packed_causal_mask(positions))
    finally:
        apply_scaling(model, scaling)
    torch.testing.assert_close(got[0], short_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got[1], long_ref, rtol=1e-4, atol=1e-4)
    # transformers' own module switches per batch: the short row would get the long factors.
    per_batch = _logits(model, ids, positions, packed_causal_mask(positions))
    assert not torch.allclose(per_batch[0], short_ref, atol=1e-3)


def test_n_hat_keeps_the_first_positions_original(setup):
    model, scaling = setup
    module = install_mixed_rotary(model, scaling, n_hat=4)
    try:
        x = torch.zeros(1, TARGET, 8)
        cos, _ = module(x, torch.arange(TARGET)[None])
        plain = install_mixed_rotary(model, scaling)
        cos_plain, _ = plain(x, torch.arange(TARGET)[None])
    finally:
        apply_scaling(model, scaling)
    short = torch.outer(torch.arange(4.0), module.short_inv_freq)
    expected = torch.cat([short, short], dim=-1).cos() * scaling.attention_factor
    torch.testing.assert_close(cos[0, :4], expected)
    torch.testing.assert_close(cos[0, 4:], cos_plain[0, 4:])
    assert not torch.allclose(cos[0, 1:4], cos_plain[0, 1:4])


def test_eager_attention_takes_the_additive_mask():
    model = tiny_llama(window=WINDOW, layers=1, hidden_size=64, heads=4, seed=5)
    model.set_attn_implementation("eager")
    scaling = get_extender("longrope2").rescale(spec_of(model), TARGET)
    apply_scaling(model, scaling)
    gen = torch.Generator().manual_seed(6)
    docs = [torch.randint(3, 384, (n,), generator=gen) for n in (10, 17)]
    separate = torch.cat([_logits(model, d[None])[0] for d in docs])
    install_mixed_rotary(model, scaling)
    positions = torch.cat([torch.arange(len(d)) for d in docs])[None]
    mask = packed_causal_mask(positions, torch.float32)
    assert mask.dtype == torch.float32 and mask[0, 0, 0, 1] == torch.finfo(torch.float32).min
    packed = _logits(model, torch.cat(docs)[None], positions, mask)[0]
    torch.testing.assert_close(packed, separate, rtol=1e-4, atol=1e-4)

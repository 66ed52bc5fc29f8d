"""RoPE math: golden values from the spec, and agreement with transformers' own rope functions."""

from __future__ import annotations

import math

import pytest
import torch

from ropebench.errors import RopebenchError
from ropebench.methods import get_extender
from ropebench.rope.math import (
    critical_index,
    critical_index_10,
    dynamic_ntk_scale,
    inv_freq_from_factors,
    llama3_factors,
    longrope2_factors,
    longrope_mscale,
    ntk_base,
    ntk_factors,
    yarn_correction_range,
    yarn_factors,
    yarn_mscale,
)
from ropebench.rope.spec import RopeSpec


def spec(head_dim=128, base=10000.0, window=4096, partial=1.0, model_type="llama") -> RopeSpec:
    rotary = int(head_dim * partial)
    return RopeSpec(base, head_dim, rotary, window, partial, model_type)


# --- golden values (shared/spec/rope-methods.md and longrope2.md) -----------------------------


def test_ntk_golden():
    assert ntk_base(spec(), 4) == pytest.approx(40889.9, abs=0.05)
    # Dynamic NTK: the NTK base of the scale at the current length (transformers' `dynamic`).
    window = spec(window=4096)
    assert ntk_base(window, dynamic_ntk_scale(window, 8192, alpha=2)) == pytest.approx(30527.7, abs=0.05)
    # Inside the window the dynamic base is the original one.
    assert ntk_base(window, dynamic_ntk_scale(window, 4000, alpha=2)) == 10000.0
    f = ntk_factors(spec(), 4)
    assert f[0] == 1.0 and f[-1] == pytest.approx(4.0)


def test_yarn_golden():
    s = spec(head_dim=128, base=1e4, window=4096)
    assert yarn_correction_range(s, 32, 1) == (20, 46)
    f = yarn_factors(s, 16)
    assert all(x == 1.0 for x in f[:21])
    assert all(x == pytest.approx(16.0) for x in f[46:])
    assert [round(f[i], 4) for i in (24, 32, 40)] == [1.1685, 1.7627, 3.5862]
    assert yarn_mscale(16) == pytest.approx(1.277259, abs=1e-6)
    assert [round(yarn_mscale(x), 6) for x in (4, 8, 32)] == [1.138629, 1.207944, 1.346574]


def test_llama3_golden():
    f = llama3_factors(spec(base=5e5, window=8192), 8, low_freq_factor=1, high_freq_factor=4)
    assert sum(x == 1.0 for x in f) == 29
    assert sum(x == 8.0 for x in f) == 29
    assert f[32] == pytest.approx(2.6945, abs=1e-4)


def test_longrope_mscale_golden():
    assert longrope_mscale(32, 4096) == pytest.approx(1.190238, abs=1e-6)
    assert longrope_mscale(16, 8192) == pytest.approx(1.143544, abs=1e-6)
    assert longrope_mscale(4, 64) == pytest.approx(1.154701, abs=1e-6)
    assert longrope_mscale(64, 2048) == pytest.approx(1.2432, abs=1e-4)  # Phi3 2K -> 128K


@pytest.mark.parametrize(
    "model, expected",
    [
        (spec(128, 500000.0, 8192), (35, 24)),  # Llama-3-8B
        (spec(96, 10000.0, 2048), (31, 19)),  # Phi3-mini
        (spec(128, 10000.0, 4096, partial=0.75), (34, 22)),  # Phi-4-mini, partial rotary
    ],
)
def test_critical_indices(model, expected):
    assert (critical_index(model), critical_index_10(model)) == expected
    periods = model.periods()
    d = critical_index(model)
    # d_tcd is the first pair whose period reaches the window.
    assert periods[d] >= model.window > periods[d - 1]


def test_critical_index_clamped_to_pairs():
    assert critical_index(spec(head_dim=16, base=10.0, window=1 << 20)) == 8
    assert critical_index(spec(window=4)) == 0


def test_longrope2_lower_group_matches_released_llama3_factors():
    # Released Llama-3 8K -> 128K factors: lambda_0..32 = 21.81^(i/33), then the searched values.
    s = spec(base=5e5, window=8192)
    upper = [21.81 + 0.01 * k for k in range(64 - 33)]
    f = longrope2_factors(s, 33, upper)
    assert len(f) == 64 and f[0] == 1.0
    assert [f[i] for i in range(33)] == pytest.approx([21.81 ** (i / 33) for i in range(33)])
    assert f[33:] == pytest.approx(tuple(upper))


def test_longrope2_factors_reject_bad_input():
    s = spec(head_dim=16)
    with pytest.raises(RopebenchError, match="exactly 5"):
        longrope2_factors(s, 3, [2.0, 2.0])
    with pytest.raises(RopebenchError, match="outside"):
        longrope2_factors(s, 8, [])
    with pytest.raises(RopebenchError, match="finite and positive"):
        longrope2_factors(s, 3, [-2.0, 2.0, 2.0, 2.0, 2.0])


def test_inv_freq_is_float32_and_checks_length():
    s = spec(head_dim=64)
    inv = inv_freq_from_factors(s, [2.0] * 32)
    assert inv.dtype == torch.float32 and inv.shape == (32,)
    assert inv[0].item() == pytest.approx(0.5)
    with pytest.raises(RopebenchError, match="exactly 32"):
        inv_freq_from_factors(s, [1.0] * 31)


# --- agreement with transformers' ROPE_INIT_FUNCTIONS -----------------------------------------

CONFIGS = [
    spec(64, 10000.0, 2048),
    spec(96, 500000.0, 4096),
    spec(128, 1000000.0, 8192),
    spec(128, 10000.0, 4096, partial=0.75),
    spec(128, 500000.0, 8192, partial=0.5),
]


def hf_rope(rope: RopeSpec, params: dict, max_positions: int, seq_len: int | None = None):
    """(inv_freq, attention factor) as transformers computes them for these rope_parameters."""
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    from transformers.models.phi3.modeling_phi3 import Phi3RotaryEmbedding

    config = LlamaConfig(
        hidden_size=rope.head_dim * 4,
        num_attention_heads=4,
        head_dim=rope.head_dim,
        max_position_embeddings=max_positions,
        rope_parameters=dict(params),
    )
    if params["rope_type"] == "default":
        # Phi-3's default honours partial_rotary_factor (Llama's rotates the whole head).
        return Phi3RotaryEmbedding.compute_default_rope_parameters(config)
    return ROPE_INIT_FUNCTIONS[params["rope_type"]](config, "cpu", seq_len=seq_len)


@pytest.mark.parametrize("rope", CONFIGS, ids=lambda r: f"d{r.rotary_dim}-b{r.base:g}-L{r.window}")
@pytest.mark.parametrize(
    "method",
    ["pi", "ntk", "dynamic-ntk", "yarn", "ntk-by-parts", "llama3", "longrope", "longrope2"],
)
def test_factors_match_transformers(rope, method):
    target = rope.window * 16
    scaling = get_extender(method).rescale(rope, target)
    params = scaling.rope_parameters
    max_positions = rope.window if params["rope_type"] == "dynamic" else target
    # seq_len past the window: dynamic grows to the target, longrope picks its long factors.
    inv_freq, m = hf_rope(rope, params, max_positions, seq_len=target)
    ours = inv_freq_from_factors(rope, scaling.long_factor)
    torch.testing.assert_close(ours, inv_freq.float(), rtol=2e-6, atol=0)
    assert scaling.attention_factor == pytest.approx(m, rel=1e-12)


def test_yarn_without_truncation_matches_transformers():
    rope = spec(128, 10000.0, 4096)
    scaling = get_extender("yarn", {"truncate": "false", "beta_fast": "16"}).rescale(rope, 32768)
    inv_freq, _ = hf_rope(rope, scaling.rope_parameters, 32768)
    torch.testing.assert_close(
        inv_freq_from_factors(rope, scaling.long_factor), inv_freq, rtol=2e-6, atol=0
    )
    low, high = yarn_correction_range(rope, 16, 1, truncate=False)
    assert not float(low).is_integer() and not float(high).is_integer()


def test_longrope_short_factors_match_transformers():
    rope = spec(96, 10000.0, 2048)
    short = [1.0 + 0.01 * i for i in range(48)]
    scaling = get_extender("longrope", {"short_factor": ",".join(map(str, short))}).rescale(
        rope, 8192
    )
    inv_freq, m = hf_rope(rope, scaling.rope_parameters, 8192, seq_len=None)  # short inputs
    torch.testing.assert_close(inv_freq_from_factors(rope, short), inv_freq, rtol=2e-6, atol=0)
    assert m == pytest.approx(math.sqrt(1 + math.log(4) / math.log(2048)))

"""Pure RoPE math: the spec of a model's rotary embedding and one function per method.

No torch modules and no I/O here. Every method reduces to per-pair factors f_i
(`inv_freq_i = theta_i / f_i`, `theta_i = base^(-2i/rotary_dim)`, i = 0 .. rotary_dim/2 - 1) and
one magnitude `m` that multiplies cos and sin (so attention logits scale by m^2). Factors are
computed in float64 Python floats; `inv_freq_from_factors` turns them into the float32 tensor a
rotary module holds, the same way transformers does for its `longrope` type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ropebench.errors import RopebenchError
from ropebench.rope.spec import RopeSpec

# --- shared pieces -----------------------------------------------------------------------------


def scale_of(spec: RopeSpec, target_length: int) -> float:
    """s = L'/L, checking that the target really extends the pretrained window."""
    if target_length <= spec.window:
        raise RopebenchError(
            f"target length {target_length} is not above the pretrained window {spec.window}; "
            f"pick a --target-length greater than {spec.window}"
        )
    return target_length / spec.window


def inv_freq_from_factors(spec: RopeSpec, factors: Sequence[float]) -> torch.Tensor:
    """float32 inverse frequencies `1 / (f_i * base^(2i/d))`, computed as transformers does."""
    if len(factors) != spec.n_pairs:
        raise RopebenchError(
            f"got {len(factors)} factors for a rotary dim of {spec.rotary_dim}; "
            f"give exactly {spec.n_pairs} (one per pair)"
        )
    exponents = torch.arange(0, spec.rotary_dim, 2, dtype=torch.int64).float() / spec.rotary_dim
    return 1.0 / (torch.tensor(factors, dtype=torch.float32) * spec.base**exponents)


def unit_factors(spec: RopeSpec) -> tuple[float, ...]:
    """The original RoPE: every f_i = 1."""
    return (1.0,) * spec.n_pairs


def check_positive(factors: Sequence[float], what: str = "factors") -> None:
    """Every factor must be a finite number above 0 (NaN, inf, 0 or negative break the angles)."""
    bad = [(i, f) for i, f in enumerate(factors) if not (math.isfinite(f) and f > 0)]
    if bad:
        i, f = bad[0]
        raise RopebenchError(
            f"{what} must be finite and positive, but entry {i} is {f}; fix the factor list"
        )


def critical_index(spec: RopeSpec) -> int:
    """d_tcd: the first pair whose period is at least the pretrained window (clamped to the pairs).

    Pairs below it complete a full period inside the window; pairs from it on never see a full
    period during pretraining, so they go out of distribution past the window.
    """
    return _first_pair_with_period(spec, spec.window)


def critical_index_10(spec: RopeSpec) -> int:
    """d10_tcd: the first pair that completes fewer than 10 periods inside the window."""
    return _first_pair_with_period(spec, spec.window / 10)


def _first_pair_with_period(spec: RopeSpec, period: float) -> int:
    # T_i >= period  <=>  i >= (d/2) * log_b(period / (2*pi))
    index = math.ceil(spec.n_pairs * math.log(period / (2 * math.pi)) / math.log(spec.base))
    return min(max(index, 0), spec.n_pairs)


# --- one function per method -------------------------------------------------------------------


def pi_factors(spec: RopeSpec, factor: float) -> tuple[float, ...]:
    """Position interpolation: every pair slowed down by the same factor."""
    return (float(factor),) * spec.n_pairs


def ntk_base(spec: RopeSpec, factor: float) -> float:
    """NTK-aware base change: b' = b * s^(d/(d-2)), which slows the last pair by exactly s."""
    return spec.base * factor ** (spec.rotary_dim / (spec.rotary_dim - 2))


def ntk_factors(spec: RopeSpec, factor: float) -> tuple[float, ...]:
    """Per-pair factors of the NTK base change: f_i = s^(2i/(d-2))."""
    d = spec.rotary_dim
    return tuple(float(factor) ** (2 * i / (d - 2)) for i in range(spec.n_pairs))


def dynamic_ntk_scale(spec: RopeSpec, length: int, alpha: float) -> float:
    """Effective NTK scale at the current length: a*l/L - (a-1) past the window, 1 inside it."""
    if length <= spec.window:
        return 1.0
    return alpha * length / spec.window - (alpha - 1)


def dynamic_ntk_factors(spec: RopeSpec, length: int, alpha: float) -> tuple[float, ...]:
    return ntk_factors(spec, dynamic_ntk_scale(spec, length, alpha))


def yarn_correction_range(
    spec: RopeSpec, beta_fast: float, beta_slow: float, truncate: bool = True
) -> tuple[float, float]:
    """Pairs (low, high) that complete beta_fast and beta_slow rotations within the window."""

    def pair_with_rotations(rotations: float) -> float:
        # Solve L / T_i = rotations for i: i = d * ln(L / (2*pi*n)) / (2*ln(b)).
        d = spec.rotary_dim
        return d * math.log(spec.window / (2 * math.pi * rotations)) / (2 * math.log(spec.base))

    low, high = pair_with_rotations(beta_fast), pair_with_rotations(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, spec.rotary_dim - 1)


def yarn_factors(
    spec: RopeSpec,
    factor: float,
    beta_fast: float = 32.0,
    beta_slow: float = 1.0,
    truncate: bool = True,
) -> tuple[float, ...]:
    """NTK-by-parts: keep fast pairs (>= beta_fast rotations), interpolate slow ones, ramp between.

    theta'_i = w_i * theta_i + (1 - w_i) * theta_i / s with w_i = 1 - ramp_i, so
    f_i = 1 / (w_i + (1 - w_i) / s).
    """
    low, high = yarn_correction_range(spec, beta_fast, beta_slow, truncate)
    if low == high:
        high += 0.001  # a zero-width ramp would divide by zero
    factors = []
    for i in range(spec.n_pairs):
        ramp = min(max((i - low) / (high - low), 0.0), 1.0)
        keep = 1.0 - ramp
        factors.append(1.0 / (keep + (1.0 - keep) / factor))
    return tuple(factors)


def yarn_mscale(factor: float) -> float:
    """YaRN attention temperature: m = 0.1*ln(s) + 1 (1 when not extending)."""
    return 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0


def llama3_factors(
    spec: RopeSpec, factor: float, low_freq_factor: float = 1.0, high_freq_factor: float = 4.0
) -> tuple[float, ...]:
    """Llama-3.1: keep short wavelengths, divide long ones by `factor`, blend in between."""
    long_wavelength = spec.window / low_freq_factor
    short_wavelength = spec.window / high_freq_factor
    factors = []
    for wavelength in spec.periods():  # lambda_i = 2*pi/theta_i is the period T_i
        if wavelength < short_wavelength:
            factors.append(1.0)
        elif wavelength > long_wavelength:
            factors.append(float(factor))
        else:
            k = (spec.window / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
            factors.append(1.0 / ((1 - k) / factor + k))
    return tuple(factors)


def longrope_mscale(factor: float, window: int) -> float:
    """LongRoPE attention temperature: m = sqrt(1 + ln(s)/ln(L)), as transformers' `longrope`."""
    return 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(window))


# LongRoPE's attention temperatures by name: its own, and the YaRN form the released code offers.
LONGROPE_MSCALES = {
    "longrope": longrope_mscale,
    "yarn": lambda factor, window: yarn_mscale(factor),
}


def check_mscale(name: str) -> None:
    if name not in LONGROPE_MSCALES:
        raise RopebenchError(f"mscale {name!r} is unknown; use one of {', '.join(LONGROPE_MSCALES)}")


def named_mscale(name: str, factor: float, window: int) -> float:
    """The LongRoPE attention temperature called `name` (see `LONGROPE_MSCALES`)."""
    check_mscale(name)
    return LONGROPE_MSCALES[name](factor, window)


def longrope2_factors(
    spec: RopeSpec, critical_index: int, upper: Sequence[float]
) -> tuple[float, ...]:
    """LongRoPE2 factors: NTK-style below the critical pair c, the given values from c on.

    The lower group is anchored at f_c: f_i = f_c^(i/c) for i < c (so f_0 = 1), i.e. a new base
    b * f_c^(d/(2c)) for those pairs.
    """
    c = critical_index
    if not 0 <= c < spec.n_pairs:
        raise RopebenchError(
            f"critical index {c} is outside 0..{spec.n_pairs - 1}; pick a pair index of this model"
        )
    if len(upper) != spec.n_pairs - c:
        raise RopebenchError(
            f"got {len(upper)} upper-group factors for critical index {c}; "
            f"give exactly {spec.n_pairs - c} (pairs {c}..{spec.n_pairs - 1})"
        )
    check_positive(upper, "upper-group factors")
    anchor = float(upper[0])
    lower = tuple(anchor ** (i / c) for i in range(c))
    return lower + tuple(float(x) for x in upper)

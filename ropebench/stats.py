"""95% intervals for the scores the reports show (numpy only, deterministic).

- `wilson`: a pass rate (every value 0 or 1), Wilson's score interval.
- `bootstrap_mean`: any other mean, the percentile bootstrap over samples (fixed seed).
- `interval`: picks one of them from the values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054
RESAMPLES = 2000


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for `successes` out of `n` (proportions in [0, 1])."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_mean(values: Sequence[float], resamples: int = RESAMPLES, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return (math.nan, math.nan)
    if data.size == 1 or np.all(data == data[0]):
        return (float(data[0]), float(data[0]))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return (float(low), float(high))


def is_binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def interval(values: Sequence[float]) -> tuple[float, float]:
    """95% interval of the mean: Wilson for pass rates, the bootstrap otherwise."""
    values = [float(v) for v in values]
    if values and is_binary(values):
        return wilson(sum(values), len(values))
    return bootstrap_mean(values)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True when two intervals share a point (their difference is not supported at 95%)."""
    if any(math.isnan(x) for x in (*a, *b)):
        return True
    return a[0] <= b[1] and b[0] <= a[1]


def ratio_interval(top: tuple[float, float, float],
                   bottom: tuple[float, float, float]) -> tuple[float, float, float]:
    """A ratio top/bottom of two independent estimates and its 95% interval, each estimate given
    as (value, low, high) with its own 95% interval.

    MOVER-R (Donner & Zou 2012) recovers the ratio's interval from the two intervals, asymmetric
    ones (Wilson's near 0% or 100%) included. Where its closed form does not apply (an interval
    reaching twice its estimate, or a negative discriminant) the bounds fall back to the ratio of
    the extremes, low/high and high/low, which is wider. An upper bound is inf when the
    denominator's interval reaches 0; everything is NaN without a positive denominator.
    """
    (a, a_low, a_high), (b, b_low, b_high) = top, bottom
    if any(math.isnan(x) for x in (a, a_low, a_high, b, b_low, b_high)) or b <= 0:
        return (math.nan, math.nan, math.nan)
    ratio = a / b
    lower_disc = (a * b) ** 2 - a_low * b_high * (2 * a - a_low) * (2 * b - b_high)
    lower_den = b_high * (2 * b - b_high)
    if lower_disc >= 0 and lower_den > 0:
        low = (a * b - math.sqrt(lower_disc)) / lower_den
    else:
        low = a_low / b_high
    if b_low <= 0:
        return (ratio, min(low, ratio), math.inf)
    upper_disc = (a * b) ** 2 - a_high * b_low * (2 * a - a_high) * (2 * b - b_low)
    upper_den = b_low * (2 * b - b_low)
    if upper_disc >= 0 and upper_den > 0:
        high = (a * b + math.sqrt(upper_disc)) / upper_den
    else:
        high = a_high / b_low
    return (ratio, min(low, ratio), max(high, ratio))

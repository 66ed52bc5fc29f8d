"""95% intervals for every score ropebench shows, by one rule (numpy only, deterministic); why
this rule: docs/intervals.md.

- Scores in [0, 1] (pass rates, fractional scores, and means of them over tasks or sub-tasks):
  Wilson's score interval. A cell of rows is pooled: successes = the sum of its scores (a row of
  an lm-eval task weighs its item count), n = its rows (or items). A mean of T such cells is
  Wilson's interval at the mean score and the effective count n_eff = T^2 / sum(1 / n_t), the
  count at which one proportion has the variance the mean of T independent ones has (n_eff is
  the total count when every cell has the same n).
- Unbounded scores (perplexities): the percentile bootstrap (2000 resamples, seed 0) over
  documents where rows carry per-document values, else over the rows; fewer than two: none.
- Every interval is clamped to its score's range (`RANGES`).

`cell_estimate` applies the rule to one cell of rows (`run/evaluate.summarize` and the reports
both call it); `mean_of_fractions` to a group's or a section's mean over its cells.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054
RESAMPLES = 2000
SEED = 0
FRACTION = "fraction"
# The range each unit's scores live in: every interval is clamped to it.
RANGES = {FRACTION: (0.0, 1.0), "perplexity": (1.0, math.inf)}
ITEMS_KEY = "sample_len"  # an lm-eval row's item count, in its metadata's `metrics`


@dataclass(frozen=True)
class Estimate:
    """A score, its 95% interval (NaN bounds: none to give) and the count behind it."""

    score: float
    low: float
    high: float
    n: int

    def scaled(self, factor: float) -> Estimate:
        return Estimate(self.score * factor, self.low * factor, self.high * factor, self.n)


def score_range(unit: str) -> tuple[float, float]:
    return RANGES.get(unit, (-math.inf, math.inf))


def clamp(low: float, high: float, unit: str) -> tuple[float, float]:
    """The interval within the unit's range (NaN stays NaN)."""
    bottom, top = score_range(unit)
    return (min(max(low, bottom), top), max(min(high, top), bottom))


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for `successes` out of `n` (an effective, non-integer n too)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = min(max(successes / n, 0.0), 1.0)  # a score outside [0, 1] is read at the bound
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At p = 0 (1) the bound is exactly 0 (1); rounding would leave it a hair inside.
    return (0.0 if p == 0 else max(0.0, centre - half), 1.0 if p == 1 else min(1.0, centre + half))


def fraction_estimate(scores: Sequence[float], counts: Sequence[int] | None = None) -> Estimate:
    """Scores in [0, 1] pooled: each weighs its count (default 1), Wilson on the successes."""
    counts = [1] * len(scores) if counts is None else list(counts)
    n = sum(counts)
    if n <= 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    successes = sum(s * c for s, c in zip(scores, counts, strict=True))
    return Estimate(successes / n, *wilson(successes, n), n)


def mean_of_fractions(means: Sequence[float], counts: Sequence[int]) -> Estimate:
    """The plain mean of T scores in [0, 1], the t-th over counts[t] samples: Wilson's interval at
    the mean and n_eff = T^2 / sum(1 / n_t); n is the total count."""
    if not means or min(counts) <= 0:
        return Estimate(math.nan, math.nan, math.nan, int(sum(counts)))
    mean = sum(means) / len(means)
    n_eff = len(means) ** 2 / sum(1 / c for c in counts)
    return Estimate(mean, *wilson(mean * n_eff, n_eff), int(sum(counts)))


def bootstrap(size: int, statistic: Callable[[Any], Any], resamples: int = RESAMPLES,
              seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of `statistic` over `size` samples: `statistic` maps a
    (resamples, size) array of sample indices to one value per resample. NaN below 2 samples."""
    import numpy as np

    if size < 2:
        return (math.nan, math.nan)
    picks = np.random.default_rng(seed).integers(0, size, size=(resamples, size))
    low, high = np.percentile(statistic(picks), [2.5, 97.5])
    return (float(low), float(high))


def _items(meta: Mapping) -> int:
    """The items a row scores: an lm-eval row's item count where it records one, else 1."""
    items = (meta.get("metrics") or {}).get(ITEMS_KEY)
    return items if isinstance(items, int) and not isinstance(items, bool) and items > 0 else 1


def _documents(metas: list[Mapping], per_document: str) -> tuple[int, Callable] | None:
    """(size, statistic) to bootstrap over the documents the rows carry, or None."""
    import numpy as np

    if per_document == "pooled_nll" and all("document_nll" in m for m in metas):
        nll = np.array([v for m in metas for v in m["document_nll"]], dtype=float)
        tokens = np.array([v for m in metas for v in m["document_tokens"]], dtype=float)
        return nll.size, lambda picks: np.exp(nll[picks].sum(axis=1) / tokens[picks].sum(axis=1))
    if per_document and all("document_ppl" in m for m in metas):
        values = np.array([v for m in metas for v in m["document_ppl"]], dtype=float)
        return values.size, lambda picks: values[picks].mean(axis=1)
    return None


def cell_estimate(scores: Sequence[float], metadata: Sequence[Any], *, unit: str,
                  per_document: str = "") -> Estimate:
    """One cell of rows (their scores and metadata) as a score, its 95% interval and n, by the
    module's rule. `unit` and `per_document` are what the rows' task declares."""
    metas = [m if isinstance(m, Mapping) else {} for m in metadata]
    if unit == FRACTION:
        return fraction_estimate(scores, [_items(m) for m in metas])
    import numpy as np

    found = _documents(metas, per_document)
    if found is None:
        values = np.asarray(scores, dtype=float)
        found = (values.size, lambda picks: values[picks].mean(axis=1))
    size, statistic = found
    low, high = clamp(*bootstrap(size, statistic), unit)
    return Estimate(sum(scores) / len(scores), low, high, size)


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

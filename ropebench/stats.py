"""95% intervals for the scores the reports show (numpy only, deterministic).

- `wilson`: a pass rate (every value 0 or 1), Wilson's score interval.
- `bootstrap_mean`: any other mean, the percentile bootstrap over samples (fixed seed).
- `interval`: picks one of them from the values.
- `cell_interval`: THE rule for one cell of results (one method, task, length): `summary.csv`,
  `summary.md` and the HTML report all call it, so they always carry the same interval
  (docs/intervals.md says why each case is treated as it is).
- `group_interval`: a group's mean over its member tasks (RULER's mean of 13 tasks).
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


def pooled_nll_interval(nll: Sequence[float], tokens: Sequence[float]) -> tuple[float, float]:
    """Bootstrap over documents of exp(summed NLL / summed tokens), fixed seed."""
    import numpy as np

    nll, tokens = np.asarray(nll, dtype=float), np.asarray(tokens, dtype=float)
    if nll.size < 2:
        value = math.exp(nll.sum() / tokens.sum())
        return (value, value)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, nll.size, size=(RESAMPLES, nll.size))
    values = np.exp(nll[picks].sum(axis=1) / tokens[picks].sum(axis=1))
    low, high = np.percentile(values, [2.5, 97.5])
    return (float(low), float(high))


# lm-eval metrics that score each item 0 or 1: a row's value is then a pass rate over its items.
BINARY_METRICS = ("acc", "acc_norm", "exact_match")


def lm_eval_stderr(meta: dict) -> float | None:
    """lm-eval's standard error of the row's headline metric (`acc,none` -> `acc_stderr,none`)."""
    metric, metrics = str(meta.get("metric", "")), meta.get("metrics") or {}
    name, _, variant = metric.partition(",")
    value = metrics.get(f"{name}_stderr,{variant}" if variant else f"{name}_stderr")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def binary_items(meta: dict) -> int | None:
    """Items behind an lm-eval row whose metric passes or fails each item, else None."""
    metrics = meta.get("metrics") or {}
    items = metrics.get("sample_len")
    if str(meta.get("metric", "")).partition(",")[0] in BINARY_METRICS and isinstance(items, int):
        return items if items > 0 else None
    return None


def cell_interval(scores: Sequence[float], metas: Sequence[dict | None], *,
                  per_document: str | bool | None = None,
                  fraction: bool = True) -> tuple[int, float, float, float]:
    """(n, score, low, high) of one cell's rows, on the rows' own scale (fractions 0..1).

    - rows that each measured several documents (`per_document`: "pooled_nll" with
      `document_nll` / `document_tokens`, else `document_ppl` in their metadata): the percentile
      bootstrap over documents, n = documents;
    - lm-eval rows of a pass-or-fail metric: Wilson over their pooled items, n = items;
    - a single lm-eval row with a standard error: +-1.96 standard errors;
    - samples: Wilson for pass rates, the bootstrap of the mean otherwise, n = samples;
    - one number without any of these: no interval (NaN).
    A fraction's bounds are clamped to [0, 1].
    """
    scores = [float(v) for v in scores]
    metas = [m or {} for m in metas]
    score = sum(scores) / len(scores)
    if per_document == "pooled_nll" and all("document_nll" in m for m in metas):
        nll = [v for m in metas for v in m["document_nll"]]
        tokens = [v for m in metas for v in m["document_tokens"]]
        return (len(nll), score, *pooled_nll_interval(nll, tokens))
    if per_document and all("document_ppl" in m for m in metas):
        values = [v for m in metas for v in m["document_ppl"]]
        return (len(values), score, *bootstrap_mean(values))
    items = [binary_items(m) for m in metas]
    if all(items):
        total = sum(items)
        passed = sum(value * n for value, n in zip(scores, items, strict=True))
        return (total, passed / total, *wilson(passed, total))
    if len(scores) == 1 and lm_eval_stderr(metas[0]) is not None:
        half = Z95 * lm_eval_stderr(metas[0])
        low, high = scores[0] - half, scores[0] + half
    elif len(scores) == 1 and (not fraction or scores[0] not in (0, 1)):
        return (1, score, math.nan, math.nan)  # one number: no interval to give
    else:
        low, high = interval(scores)
    return (len(scores), score, *(_clamped(low, high) if fraction else (low, high)))


def group_interval(per_task: Sequence[Sequence[float]]) -> tuple[int, float, float, float]:
    """(n, mean, low, high) of a group's score, the plain mean of its member tasks' means.

    Pass/fail members with equal sample counts: Wilson over the pooled samples (the pooled rate
    equals the mean of the task means; treating the tasks' samples as one sample is conservative
    when the tasks' rates differ, and, unlike a bootstrap, never collapses to a point when every
    sample agrees). Otherwise: the bootstrap that resamples each task's samples within the task.
    """
    import numpy as np

    arrays = [np.asarray(v, dtype=float) for v in per_task]
    n = sum(a.size for a in arrays)
    score = float(np.mean([a.mean() for a in arrays]))
    if all(is_binary(a.tolist()) for a in arrays) and len({a.size for a in arrays}) == 1:
        return (n, score, *wilson(float(sum(a.sum() for a in arrays)), n))
    rng = np.random.default_rng(0)
    means = np.zeros(RESAMPLES)
    for values in arrays:
        means += values[rng.integers(0, values.size, size=(RESAMPLES, values.size))].mean(axis=1)
    low, high = np.percentile(means / len(arrays), [2.5, 97.5])
    return (n, score, float(low), float(high))


def _clamped(low: float, high: float) -> tuple[float, float]:
    return (max(0.0, low), min(1.0, high))


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

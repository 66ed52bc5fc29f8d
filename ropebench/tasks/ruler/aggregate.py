"""RULER's summary numbers over per-length scores: weighted averages, thresholds, effective length.

Scores here are RULER's x100 scale. A per-length score is the plain mean of the task means at
that length (the report computes it from rows).
"""

from __future__ import annotations

from collections.abc import Mapping

from ropebench.errors import RopebenchError

# Llama-2-7B's RULER score at 4K: RULER's threshold for the effective context length.
LLAMA2_THRESHOLD = 85.6
# Below that, small models are judged against 90% of their own score at the pretrained window.
RELATIVE_THRESHOLD = 0.9


def weighted_average(per_length: Mapping[int, float], *, increasing: bool) -> float:
    """wAvg(inc) weights the i-th shortest length by i, wAvg(dec) by n + 1 - i (RULER: 1..6 / 21)."""
    if not per_length:
        raise RopebenchError("no scores to average; evaluate at least one length")
    lengths = sorted(per_length)
    n = len(lengths)
    weights = [i + 1 if increasing else n - i for i in range(n)]
    return sum(w * per_length[length] for w, length in zip(weights, lengths, strict=True)) / sum(weights)


def wavg_inc(per_length: Mapping[int, float]) -> float:
    return weighted_average(per_length, increasing=True)


def wavg_dec(per_length: Mapping[int, float]) -> float:
    return weighted_average(per_length, increasing=False)


def default_threshold(per_length: Mapping[int, float], reference_length: int | None = None) -> float:
    """85.6 (RULER), unless the model scores no more than that at its own window
    (`reference_length`): then 90% of that score, so small models get a meaningful bar."""
    if reference_length is None or reference_length not in per_length:
        return LLAMA2_THRESHOLD
    own = per_length[reference_length]
    return LLAMA2_THRESHOLD if own > LLAMA2_THRESHOLD else RELATIVE_THRESHOLD * own


EFFECTIVE_RULES = ("reference", "largest")


def effective_length(per_length: Mapping[int, float], threshold: float = LLAMA2_THRESHOLD,
                     rule: str = "reference") -> int | None:
    """RULER's effective context length; None when the shortest length fails (RULER's `<4K`).

    `reference`: walking up from the shortest length, the last length before the first one that
    scores below `threshold` (a score equal to it passes, as RULER's README counts 85.6).
    `largest`: the largest length scoring at least `threshold`, failures below it ignored."""
    if rule not in EFFECTIVE_RULES:
        raise RopebenchError(f"effective-length rule {rule!r} is not one of {', '.join(EFFECTIVE_RULES)}")
    passing = None
    for length in sorted(per_length):
        if per_length[length] >= threshold:
            passing = length
        elif rule == "reference":
            break
    return passing


NOLIMA_RATIO = 0.85  # NoLiMa: a length counts while its score keeps 85% of the short-context score


def relative_effective_length(per_length: Mapping[int, float], ratio: float = NOLIMA_RATIO) -> int | None:
    """NoLiMa's effective length: walking up from the shortest length (the model's own
    short-context score, the base), the last length before the first whose score falls below
    `ratio` x the base; None when there are no scores or the base is 0."""
    if not per_length or per_length[min(per_length)] <= 0:
        return None
    return effective_length(per_length, ratio * per_length[min(per_length)])

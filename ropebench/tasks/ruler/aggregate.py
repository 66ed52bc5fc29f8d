"""RULER's summary numbers: task scores, per-length means, weighted averages, effective length.

Scores here are RULER's x100 scale. Rows carry per-sample scores in [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ropebench.errors import RopebenchError

# Llama-2-7B's RULER score at 4K: RULER's threshold for the effective context length.
LLAMA2_THRESHOLD = 85.6
# Below that, small models are judged against 90% of their own score at the pretrained window.
RELATIVE_THRESHOLD = 0.9


def task_scores(rows: Iterable[Mapping[str, Any]], tasks: Iterable[str]) -> dict[str, dict[int, float]]:
    """{task: {length: mean score x 100}} over the rows of the given tasks."""
    wanted = set(tasks)
    sums: dict[tuple[str, int], list[float]] = {}
    for row in rows:
        if row["task"] in wanted:
            sums.setdefault((row["task"], int(row["length"])), []).append(float(row["score"]))
    out: dict[str, dict[int, float]] = {}
    for (task, length), values in sorted(sums.items()):
        out.setdefault(task, {})[length] = 100 * sum(values) / len(values)
    return out


def coverage(scores: Mapping[str, Mapping[int, float]], tasks: Iterable[str]) -> dict[int, int]:
    """How many of `tasks` have a score at each length (a per-length mean over fewer is partial)."""
    wanted = set(tasks)
    lengths = sorted({length for by_length in scores.values() for length in by_length})
    return {length: sum(1 for t, by in scores.items() if t in wanted and length in by)
            for length in lengths}


def per_length_means(scores: Mapping[str, Mapping[int, float]]) -> dict[int, float]:
    """Plain mean over tasks at each length (RULER's per-length score)."""
    lengths = sorted({length for by_length in scores.values() for length in by_length})
    means = {}
    for length in lengths:
        values = [by_length[length] for by_length in scores.values() if length in by_length]
        means[length] = sum(values) / len(values)
    return means


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

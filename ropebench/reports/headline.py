"""The report's first sentence: the ranking by the first score column and which of its
differences the 95% intervals support."""

from __future__ import annotations

import pandas as pd

from ropebench.reports.scores import Score


def words(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _supported(summary: pd.DataFrame, score: Score, ranked: list[str]) -> str:
    """Which differences from the top method the intervals support ('': one method only)."""
    top = ranked[0]
    tied = [m for m in ranked[1:] if bool(summary.loc[m, f"{score.column} tied"])]
    ahead = [m for m in ranked[1:] if m not in tied]
    parts = []
    if ahead:
        parts.append(f"the 95% intervals support {top} being ahead of {words(ahead)}")
    if tied:
        whose = f"{tied[0]}'s interval overlaps" if len(tied) == 1 else \
            f"the intervals of {words(tied)} overlap"
        parts.append(f"{whose} {top}'s, so the data do not support {top} being ahead of "
                     f"{'it' if len(tied) == 1 else 'them'} (marked as tied)")
    sentence = "; ".join(parts)
    return f" {sentence[0].upper()}{sentence[1:]}." if sentence else ""


def headline(summary: pd.DataFrame, scores: list[Score]) -> str:
    """The ranking by the first score column and which differences its intervals support."""
    if not scores:
        return "No scored results yet."
    score = scores[0]
    values = summary[score.column].astype(float).dropna()
    ranked = values.sort_values(ascending=not score.higher_is_better).index.tolist()
    if not ranked:
        return "No scored results yet."

    def show(method: str) -> str:
        low, high = summary.loc[method, f"{score.column} low"], summary.loc[method, f"{score.column} high"]
        return f"{method} ({values[method]:.1f} [{low:.1f}, {high:.1f}])"

    direction = "higher" if score.higher_is_better else "lower"
    text = f"Ranked by {score.what} ({direction} is better): " + ", ".join(show(m) for m in ranked) + "."
    return text + _supported(summary, score, ranked)

"""The near-lossless half of a comparison: what each method keeps at the original window.

A context-extension method makes two claims: long inputs work, and short ones lose nothing. Per
task section the report puts, for every method, the score at the target (the longest length run)
beside the score at the original window (the longest length run at or below it) and the
retention: that short score relative to the original model's (the run's baseline), as a percentage
with its 95% interval. A section without lengths (short-context harness tasks) is short context
as a whole. For a lower-is-better unit (perplexity) retention is baseline / method, so 100% still
means "as good as the original" and less means worse.

Nothing here names a task: sections, units and directions come from the section kinds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from ropebench.reports.headline import headline as ranking
from ropebench.reports.headline import words
from ropebench.reports.results import RunResults
from ropebench.reports.scores import Score, retained_percent
from ropebench.reports.sections import Section, kind_of, sections
from ropebench.stats import overlap

RETAINED = "retained %"


@dataclass
class Retention:
    """One section's short-context half: the lengths used and the method x score table."""

    section: Section
    short: int | None  # the length read as short context; None: the section has no lengths
    long: int | None  # the longest length run; None as above
    table: pd.DataFrame  # columns `C`, `C low`, `C high`, `C n` for each shown score

    @property
    def long_column(self) -> str | None:
        return None if self.long is None else f"score @{self.long}"


def _length_stats(results: RunResults, section: Section) -> pd.DataFrame | None:
    """method, length, n, score, low, high of a section that has lengths, else None; only at the
    lengths the short-context half reads (the longest, and the longest within the window)."""
    rows = results.rows[results.rows["task"].isin(section.tasks)]
    lengths = sorted(int(x) for x in rows["length"].unique())
    window = int(results.spec.get("window", 0))
    keep = {lengths[-1], *[length for length in lengths if length <= window][-1:]} if lengths else set()
    return kind_of(section).length_stats(rows[rows["length"].isin(keep)], section)


def _put(table: pd.DataFrame, column: str, values: pd.DataFrame) -> None:
    values = values.reindex(table.index)
    table[column] = values["score"].astype(float)
    for part in ("low", "high", "n"):
        table[f"{column} {part}"] = values[part]


def section_retention(results: RunResults, section: Section) -> Retention | None:
    """The section's short-context half, or None without a baseline or a short-context score."""
    baseline, window = results.baseline, int(results.spec.get("window", 0))
    table = pd.DataFrame(index=pd.Index(results.labels, name="method"))
    stats = _length_stats(results, section)
    if stats is None:
        short = long = None
        _put(table, "score", kind_of(section).whole_stats(results.rows[results.rows["task"].isin(section.tasks)], section))
    else:
        lengths = sorted(int(x) for x in stats["length"].unique())
        shorts = [length for length in lengths if length <= window]
        if not shorts:
            return None
        short, long = shorts[-1], lengths[-1]
        for length in dict.fromkeys([long, short]):
            _put(table, f"score @{length}", stats[stats["length"] == length].set_index("method"))
    column = "score" if short is None else f"score @{short}"
    if baseline is None or pd.isna(table.loc[baseline, column]):
        return None
    retained_percent(table, column, RETAINED, baseline, section.higher_is_better)
    counts = [c for c in table.columns if c.endswith(" n")]
    return Retention(section, short, long, table.astype({c: "Int64" for c in counts}))


def retentions(results: RunResults) -> list[Retention]:
    """Every section's short-context half that the run measured, in the report's section order."""
    found = (section_retention(results, s) for s in sections(results.rows))
    return [r for r in found if r is not None]


def primary(results: RunResults) -> Retention | None:
    """The half the headline states: the ranking section's when it has one, else the first."""
    found = retentions(results)
    ranking = sections(results.rows)[:1]
    return next((r for r in found if ranking and r.section.key == ranking[0].key),
                found[0] if found else None)


# ---------------------------------------------------------------- the headline's second half

def headline(results: RunResults, summary: pd.DataFrame, scores: list[Score]) -> str:
    """Both halves of the claim: the ranking at the target, then what short context keeps."""
    return f"{ranking(summary, scores)} {short_context_sentence(results)}"


def short_context_sentence(results: RunResults) -> str:
    """Each method's retention at the original window and which differences its interval supports."""
    window = results.spec.get("window", "?")
    if results.baseline is None:
        return ("Short context: the run has no original-model baseline, so what the methods keep "
                "at the original window is not measured (add the `none` method to the plan).")
    view = primary(results)
    if view is None:
        return (f"Short context: the original model has no score at or below the original window "
                f"({window} tokens); evaluate there to measure what the methods keep.")
    table = view.table.drop(index=results.baseline)
    table = table[table[RETAINED].notna()]
    if table.empty:
        return "Short context: no method besides the original model has a score there."
    ranked = table[RETAINED].sort_values(ascending=False).index.tolist()
    spans = {m: (float(table.loc[m, f"{RETAINED} low"]), float(table.loc[m, f"{RETAINED} high"]))
             for m in ranked}
    if view.short is None:
        where = ""
    elif view.short == window:
        where = f" at {view.short} tokens, the original window"
    else:
        where = f" at {view.short} tokens, within the {window}-token original window"
    shown = ", ".join(f"{m} {table.loc[m, RETAINED]:.1f}% [{spans[m][0]:.1f}, {spans[m][1]:.1f}]"
                      for m in ranked)
    text = (f"Short context ({view.section.title}{where}, relative to the original model "
            f"{results.baseline}): kept {shown}.")
    return f"{text} {_supported(ranked, spans)}"


def _supported(ranked: list[str], spans: dict[str, tuple[float, float]]) -> str:
    """Which retention differences the 95% intervals support: against 100%, and between methods."""
    known = [m for m in ranked if not any(math.isnan(x) for x in spans[m])]
    loss = [m for m in known if spans[m][1] < 100]
    kept = [m for m in known if spans[m][0] <= 100 <= spans[m][1]]
    gain = [m for m in known if spans[m][0] > 100]
    parts = []
    if loss:
        parts.append(f"the 95% intervals support a short-context loss for {words(loss)}")
    if kept:
        whose = "its interval" if len(kept) == 1 else "their intervals"
        parts.append(f"they do not support a loss for {words(kept)} (100% lies within {whose})")
    if gain:
        parts.append(f"they support {words(gain)} scoring above the original model")
    if len(known) > 1:
        top = known[0]
        behind = [m for m in known[1:] if not overlap(spans[top], spans[m])]
        if behind:
            parts.append(f"they support {top} keeping more than {words(behind)}")
        else:
            parts.append(f"they do not separate {top} from {words(known[1:])}")
    unknown = [m for m in ranked if m not in known]
    if unknown:
        parts.append(f"{words(unknown)} without an interval (too few samples) cannot be judged")
    sentence = "; ".join(parts)
    return f"{sentence[0].upper()}{sentence[1:]}." if sentence else ""

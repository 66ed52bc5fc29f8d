"""What each method was given, side by side: the terms a comparison is fair on.

Per method: its kind and where its factors came from, the attention temperature m its scaling
sets (attention logits scale by m^2; it differs between methods at the same s and alone moves
long-context scores), the search's evaluations, the training tokens in short and long rows, the
training wall time and the trainable parameters. A value the run did not record is left empty
(shown as "-"), never guessed.
"""

from __future__ import annotations

import pandas as pd

from ropebench.reports.results import RunResults

COLUMNS = ["kind", "factors", "attention factor m", "search evaluations", "train tokens short",
           "train tokens long", "train tokens", "train s", "trainable parameters"]
COUNTS = ["search evaluations", "train tokens short", "train tokens long", "train tokens",
          "trainable parameters"]


def configuration_table(results: RunResults) -> pd.DataFrame:
    """method x COLUMNS, from the stages' records (None where a record is absent)."""
    table = pd.DataFrame(index=pd.Index([m.label for m in results.methods], name="method"),
                         columns=COLUMNS, dtype=object)
    for m in results.methods:
        table.loc[m.label] = [
            m.method,
            (m.scaling or {}).get("provenance"),
            None if m.attention_factor is None else round(m.attention_factor, 4),
            m.search_evaluations,
            m.tokens_short,
            m.tokens_long,
            m.train_tokens,
            None if m.train_seconds is None else round(float(m.train_seconds), 1),
            m.trainable_parameters,
        ]
    table = table.astype({c: "Int64" for c in COUNTS})
    table["attention factor m"] = table["attention factor m"].astype(float)
    table["train s"] = table["train s"].astype(float)
    return table


def as_text(table: pd.DataFrame) -> pd.DataFrame:
    """The table as display strings: m to 4 decimals, counts whole, seconds to 0.1, "-" if absent."""

    def show(column: str, value) -> str:
        if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
            return "-"
        if column == "attention factor m":
            return f"{float(value):.4f}"
        if column == "train s":
            return f"{float(value):.1f}"
        return str(value)

    return pd.DataFrame({c: [show(c, v) for v in table[c]] for c in table.columns},
                        index=table.index)

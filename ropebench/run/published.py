"""Published benchmark numbers, to set beside a run (`ropebench/data/published/*.json`).

Each row is one published table row: the model it measured (a hub id), the method ("none": the
model as released), the benchmark (a task group, e.g. RULER's), its per-length scores (0-100) and
where it was published (document, table, row, address). Only numbers found in the published
material are entered; see docs for the rows that could not be verified.

A plan's `published:` list or `ropebench report --published NAME` names rows; `ropebench
reproduce NAME` writes the plan that would measure a row again.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.registry import did_you_mean

DATA = Path(__file__).resolve().parents[1] / "data" / "published"
RULER_SEED = 42  # RULER's generators' seed


@dataclass(frozen=True)
class PublishedRow:
    name: str
    title: str
    model: str
    method: str
    benchmark: str  # the task group the scores are the per-length mean of
    scores: dict[int, float]  # length -> score (0-100)
    source: str
    url: str
    samples: int
    chat: bool
    effective_length: int | None = None


@dataclass(frozen=True)
class Comparison:
    """A run's measured score at one length beside the published one."""

    length: int
    published: float
    measured: float
    low: float
    high: float
    n: int

    @property
    def difference(self) -> float:
        return self.measured - self.published

    @property
    def inside(self) -> bool:
        """Whether the published number lies inside the run's 95% interval."""
        return self.low <= self.published <= self.high

    def statement(self) -> str:
        where = "inside" if self.inside else "outside"
        return (f"published {self.published:.1f} lies {where} the measured 95% interval "
                f"[{self.low:.1f}, {self.high:.1f}] (n={self.n})")


def _row(name: str, raw: dict[str, Any]) -> PublishedRow:
    return PublishedRow(
        name=name, title=raw["title"], model=raw["model"], method=raw["method"],
        benchmark=raw["benchmark"],
        scores={int(length): float(score) for length, score in raw["scores"].items()},
        source=raw["source"], url=raw["url"], samples=int(raw["samples"]),
        chat=bool(raw["chat"]), effective_length=raw.get("effective_length"),
    )


@functools.lru_cache(maxsize=1)
def published_rows() -> dict[str, PublishedRow]:
    """Every published row shipped with ropebench, by name."""
    rows: dict[str, PublishedRow] = {}
    for path in sorted(DATA.glob("*.json")):
        for name, raw in json.loads(path.read_text(encoding="utf-8")).items():
            rows[name] = _row(name, raw)
    return rows


def get_published(name: str) -> PublishedRow:
    rows = published_rows()
    if name not in rows:
        raise RopebenchError(f"unknown published row {name!r}{did_you_mean(name, list(rows))}; "
                             f"choose from {', '.join(rows)}")
    return rows[name]


def model_matches(run_model: str, published_model: str) -> bool:
    """The run measured the published model: the same hub id, or a local copy under its name."""
    run_model = run_model.rstrip("/")
    return run_model == published_model or \
        run_model.split("/")[-1].lower() == published_model.split("/")[-1].lower()


def compare(row: PublishedRow, measured: dict[int, tuple[float, float, float, int]]) -> list[Comparison]:
    """The lengths both have: `measured` maps length -> (score, low, high, n), scores 0-100."""
    return [Comparison(length, row.scores[length], *measured[length])
            for length in sorted(set(row.scores) & set(measured))]


def reproduction_plan(row: PublishedRow) -> dict[str, Any]:
    """The plan that measures `row` again: its model as released, its lengths, the benchmark's
    own sample count and seed, RULER's reference fill and the chat template as published."""
    lengths = sorted(row.scores)
    return {
        "name": f"reproduce-{row.name}",
        "model": row.model,
        "target_length": lengths[-1],
        "methods": [row.method],
        "published": [row.name],
        "evaluate": {
            "tasks": [row.benchmark],
            "lengths": lengths,
            "samples": row.samples,
            "seed": RULER_SEED,
            "options": {"fill": "reference", "chat": row.chat},
        },
    }

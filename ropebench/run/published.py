"""Published benchmark numbers, to set beside a run (`ropebench/data/published/*.json`).

Each row is one published table row: the model it measured (a hub id; null where the checkpoint
was never released), the method ("none": the model as released; otherwise the method the authors
extended it with, `trained` when they also fine-tuned it), the benchmark (a task group, e.g.
RULER's), its per-length scores (0-100) and where it was published (document, table and row,
address, version). Only numbers read in the published material are entered; `samples` is null
where the source does not state it, and `note` says what the source leaves open. See docs for the
rows that could not be read.

A plan's `published:` list or `ropebench report --published NAME` names rows; `ropebench
reproduce NAME` writes the plan that would measure a row again.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.registry import did_you_mean

DATA = Path(__file__).resolve().parents[1] / "data" / "published"
RULER_SEED = 42  # RULER's generators' seed
RULER_SAMPLES = 500  # RULER's default samples per task and length, for sources that state none


@dataclass(frozen=True)
class PublishedRow:
    name: str
    title: str
    model: str | None  # hub id; None: the measured checkpoint was not released
    method: str
    benchmark: str  # the task group the scores are the per-length mean of
    scores: dict[int, float]  # length -> score (0-100), as published
    source: str  # the document
    url: str
    table: str  # the table and the row label, as printed
    samples: int | None  # per task and length; None: the source does not say
    chat: bool
    trained: bool = False  # the authors fine-tuned the extended model before measuring it
    params: dict[str, Any] = field(default_factory=dict)  # the method's settings, e.g. dca's frequency
    version: str | None = None  # commit or document version the numbers were read at
    note: str = ""  # what the source leaves open, and where its text was read
    effective_length: int | None = None

    @property
    def plan_samples(self) -> int:
        """Samples a reproduction draws: the source's own, else RULER's default."""
        return RULER_SAMPLES if self.samples is None else self.samples


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
        return (f"published {self.published} lies {where} the measured 95% interval "
                f"[{self.low:.1f}, {self.high:.1f}] (n={self.n})")


def _row(name: str, raw: dict[str, Any]) -> PublishedRow:
    return PublishedRow(
        name=name, title=raw["title"], model=raw["model"], method=raw["method"],
        benchmark=raw["benchmark"],
        scores={int(length): float(score) for length, score in raw["scores"].items()},
        source=raw["source"], url=raw["url"], table=raw["table"],
        samples=None if raw["samples"] is None else int(raw["samples"]),
        chat=bool(raw["chat"]), trained=bool(raw.get("trained", False)),
        params=dict(raw.get("params") or {}),
        version=raw.get("version"), note=raw.get("note", ""),
        effective_length=raw.get("effective_length"),
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


def model_matches(run_model: str, published_model: str | None) -> bool:
    """The run measured the published model: the same hub id, or a local copy under its name.
    A row whose checkpoint was never released (None) matches no run."""
    if published_model is None:
        return False
    run_model = run_model.rstrip("/")
    return run_model == published_model or \
        run_model.split("/")[-1].lower() == published_model.split("/")[-1].lower()


def compare(row: PublishedRow, measured: dict[int, tuple[float, float, float, int]]) -> list[Comparison]:
    """The lengths both have: `measured` maps length -> (score, low, high, n), scores 0-100."""
    return [Comparison(length, row.scores[length], *measured[length])
            for length in sorted(set(row.scores) & set(measured))]


def reproduction_plan(row: PublishedRow, model: str | None = None) -> dict[str, Any]:
    """The plan that measures `row` again: its model (`model` replaces it, e.g. a local copy), its
    lengths, the source's sample count (else RULER's) and RULER's seed, RULER's reference fill and
    the chat template as published; a `train:` section (ropebench's defaults, to be sized to the
    authors' budget) where the authors fine-tuned the extended model."""
    model = model or row.model
    if model is None:
        raise RopebenchError(f"published row {row.name!r} measured a checkpoint that was not "
                             "released; give the model to extend with --model PATH")
    lengths = sorted(row.scores)
    return {
        "name": f"reproduce-{row.name}",
        "model": model,
        "target_length": lengths[-1],
        **({"train": {}} if row.trained else {}),
        "methods": [{"method": row.method, "params": row.params} if row.params else row.method],
        "published": [row.name],
        "evaluate": {
            "tasks": [row.benchmark],
            "lengths": lengths,
            "samples": row.plan_samples,
            "seed": RULER_SEED,
            "options": {"fill": "reference", "chat": row.chat},
        },
    }

"""Read a comparison run directory (manifest, stage artifacts, rows, run log) into plain data.

The report never runs a model: everything it shows comes from here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ropebench.errors import RopebenchError
from ropebench.run.runlog import RunLog

ROW_COLUMNS = ["task", "length", "method", "score", "prediction", "references", "input_tokens",
               "seconds", "index", "metadata"]


@dataclass
class MethodResult:
    """What one method produced: its factors, its training curve and its costs."""

    label: str
    method: str
    baseline: bool
    scaling: dict[str, Any] | None  # a RopeScaling.to_dict()
    losses: list[tuple[int, float]] = field(default_factory=list)
    search_seconds: float | None = None
    search_evaluations: int | None = None
    train_seconds: float | None = None
    train_tokens: int | None = None
    # From the train stage's done record where the trainer wrote them (None: not recorded).
    tokens_short: int | None = None  # tokens in short (original-RoPE) rows of mixed training
    tokens_long: int | None = None  # tokens in long (rescaled) rows
    trainable_parameters: int | None = None
    complete: bool = True  # every stage of the method has its done marker

    @property
    def attention_factor(self) -> float | None:
        """The magnitude m on cos and sin (attention logits scale by m^2), as the scaling set it."""
        value = (self.scaling or {}).get("attention_factor")
        return float(value) if isinstance(value, int | float) else None

    @property
    def fitness_history(self) -> list[float]:
        return list((self.scaling or {}).get("extra", {}).get("fitness_history") or [])

    @property
    def baseline_fitness(self) -> dict[str, float]:
        """Analytic methods' fitness on the documents this method's search optimised."""
        return dict((self.scaling or {}).get("extra", {}).get("baseline_fitness") or {})


@dataclass
class RunResults:
    run_dir: Path
    name: str
    model: str
    target_length: int
    spec: dict[str, Any]
    methods: list[MethodResult]
    rows: pd.DataFrame
    plan: dict[str, Any]
    environment: dict[str, Any]

    @property
    def baseline(self) -> str | None:
        return next((m.label for m in self.methods if m.baseline), None)

    @property
    def complete(self) -> bool:
        return all(m.complete for m in self.methods)

    @property
    def labels(self) -> list[str]:
        """The methods' labels in the run's order (every table lists methods in it)."""
        return [m.label for m in self.methods]


def load_run(run_dir: str | Path) -> RunResults:
    """Everything the report shows, read from `run_dir`; unfinished stages are simply absent."""
    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    if not manifest_path.is_file():
        raise RopebenchError(
            f"{run_dir} has no manifest.json; give the --out folder of a `ropebench compare` run"
        )
    manifest = json.loads(manifest_path.read_text())
    methods, frames = [], []
    for entry in manifest["methods"]:
        methods.append(_method(run_dir, entry))
        for stage in entry["evals"].values():
            rows = run_dir / stage["path"] / "rows.jsonl"
            if rows.is_file():
                frames.append(read_rows(rows))
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ROW_COLUMNS)
    plan_path = run_dir / "plan.json"
    events = RunLog(run_dir / "runlog.jsonl").events()
    starts = [e for e in events if e["event"] == "run_start"]
    return RunResults(
        run_dir=run_dir,
        name=manifest.get("name", run_dir.name),
        model=manifest.get("model", ""),
        target_length=int(manifest["target_length"]),
        spec=manifest.get("spec", {}),
        methods=methods,
        rows=rows,
        plan=json.loads(plan_path.read_text()) if plan_path.is_file() else {},
        environment=starts[-1].get("environment", {}) if starts else {},
    )


def read_rows(path: Path) -> pd.DataFrame:
    """rows.jsonl -> DataFrame; a torn last line (an interrupted write) is ignored."""
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    frame = pd.DataFrame(records, columns=None if records else ROW_COLUMNS)
    if "metadata" not in frame:
        frame["metadata"] = [{} for _ in range(len(frame))]
    return frame


def _method(run_dir: Path, entry: dict[str, Any]) -> MethodResult:
    stages = [entry["scaling"], *([entry["train"]] if entry["train"] else []), *entry["evals"].values()]
    result = MethodResult(
        label=entry["label"], method=entry["method"], baseline=bool(entry.get("baseline")),
        scaling=_json(run_dir / entry["scaling"]["path"] / "scaling.json"),
        complete=all((run_dir / s["path"] / "done").is_file() for s in stages),
    )
    extra = (result.scaling or {}).get("extra", {})
    done = _json(run_dir / entry["scaling"]["path"] / "done") or {}
    searched = (result.scaling or {}).get("provenance") == "searched"
    if searched:
        result.search_seconds = extra.get("seconds", done.get("seconds"))
    result.search_evaluations = _count(
        done.get("search_evaluations", extra.get("evaluations") if searched else None))
    if entry["train"]:
        losses = _json(run_dir / entry["train"]["path"] / "losses.json")
        if losses:
            result.losses = [(int(step), float(loss)) for step, loss in losses["losses"]]
            result.train_seconds = losses.get("seconds")
            result.train_tokens = losses.get("tokens")
        trained = _json(run_dir / entry["train"]["path"] / "done") or {}
        if isinstance(trained.get("seconds"), int | float):
            result.train_seconds = float(trained["seconds"])  # the stage's wall time
        result.tokens_short = _count(trained.get("tokens_short"))
        result.tokens_long = _count(trained.get("tokens_long"))
        result.trainable_parameters = _count(trained.get("trainable_parameters"))
    return result


def _count(value: Any) -> int | None:
    """A recorded count, or None where the record has none (or not a whole number)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
    return int(value) if ok else None


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None

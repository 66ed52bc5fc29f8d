"""The state of an evolutionary search, checkpointed as JSON after every evaluation.

A checkpoint carries a fingerprint of what the search depends on; resuming with another
fingerprint is refused, so a checkpoint never leaks into a different search.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.io import write_text_atomic


@dataclass
class SearchState:
    generation: int = 0  # generations completed
    population: list[str] = field(default_factory=list)  # candidate keys at the generation boundary
    seen: list[str] = field(default_factory=list)  # every key ever proposed, at the boundary
    cache: dict[str, float] = field(default_factory=dict)  # key -> fitness of every evaluation
    history: list[float] = field(default_factory=list)  # best fitness after each generation
    rng: list[Any] | None = None  # random.Random state at the boundary
    seconds: float = 0.0  # time spent evaluating candidates
    baselines: dict[str, float] = field(default_factory=dict)  # method -> fitness of its factors

    def save(self, path: Path, fingerprint: dict[str, Any]) -> None:
        """Atomic write: a crash never leaves a truncated checkpoint."""
        write_text_atomic(
            path, json.dumps({"fingerprint": fingerprint, "state": dataclasses.asdict(self)})
        )

    @classmethod
    def load(cls, path: Path, fingerprint: dict[str, Any]) -> SearchState:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise RopebenchError(f"cannot read search checkpoint {path}: {err}; delete it to restart") from err
        if data.get("fingerprint") != fingerprint:
            raise RopebenchError(
                f"search checkpoint {path} belongs to a different search (model, method, length, "
                "settings or fitness documents differ); delete it or choose another checkpoint path"
            )
        return cls(**data["state"])


def fingerprint_of(method: str, spec: Any, target_length: int, settings: Any,
                   scorer_identity: Any) -> dict[str, Any]:
    """What a checkpoint must agree on: method, RoPE, length, settings and what the scorer runs on
    (the model's weights and the fitness documents). Not `iterations`: it only says when to stop,
    so a finished search can be resumed with more generations; nor `progress`, `baselines` and
    `spread_sets`,
    which change what is shown, not what is found."""
    ignored = ("iterations", "progress", "baselines", "spread_sets")
    kept = {k: v for k, v in dataclasses.asdict(settings).items() if k not in ignored}
    return {
        "method": method,
        "spec": dataclasses.asdict(spec),
        "target_length": target_length,
        "settings": kept,
        "scorer": scorer_identity,
    }

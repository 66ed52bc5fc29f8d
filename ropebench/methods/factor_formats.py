"""The layouts a factors file comes in, read into one raw form (`FactorFile`), nothing checked yet.

- a saved `RopeScaling` (what `ropebench search` / `extend` write): has `method`, `long_factor`
  and `rope_parameters`;
- a factor-list JSON: `long_factor`, optionally `short_factor`, `critical_index`, `method`,
  `target_length`, `original_length` / `original_max_position_embeddings`, `attention_factor`;
- a HF config.json whose `rope_parameters` / `rope_scaling` is of type `longrope` (Phi-3/Phi-4,
  nnscaler's LongRoPE2 Llama-3 config): the window and target come from the config;
- the released LongRoPE CSV files: factors separated by commas or whitespace, as one row, one
  column, or one identical row per layer (the released v1 files repeat the row for every layer).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.rope.spec import configured_rope

# Far above any factors file (a config.json with two 64-entry lists is ~4 KB); a bigger input is
# not a factors file, and reading it whole (/dev/zero) would never end.
MAX_BYTES = 4 * 1024 * 1024


@dataclass
class FactorFile:
    """A factors file's fields as written (values unchecked), and which layout it had."""

    layout: str  # "saved", "list", "hf-config" or "csv"
    long_factor: Any
    short_factor: Any = None
    method: Any = None
    critical_index: Any = None
    target_length: Any = None
    original_length: Any = None
    attention_factor: Any = None
    base: Any = None  # rope_theta the factors were made for, where the file says
    saved: dict[str, Any] = field(default_factory=dict)  # the whole dict of a saved RopeScaling


def read_factor_file(path: Path) -> FactorFile:
    """Read `path` in whichever layout it has."""
    text = _read_text(path)
    if text.lstrip()[:1] in ("{", "["):
        return _from_json(path, _parse_json(path, text))
    return _from_csv(path, text)


def _read_text(path: Path) -> str:
    if not path.exists():
        raise RopebenchError(f"factors file {path} does not exist; check the --factors path")
    if not path.is_file():
        raise RopebenchError(f"factors file {path} is not a regular file; give a JSON or CSV file")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise RopebenchError(
                f"factors file {path} is over {MAX_BYTES // (1024 * 1024)} MB, far more than any "
                "factor list; give the JSON or CSV file that holds the factors"
            )
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RopebenchError(f"cannot read factors file {path}: {err}; give a valid JSON file") from err


def _parse_json(path: Path, text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise RopebenchError(f"cannot read factors file {path}: {err}; give a valid JSON file") from err
    if not isinstance(data, dict):
        raise RopebenchError(f"factors file {path} must hold a JSON object with `long_factor`")
    return data


def _from_json(path: Path, data: dict[str, Any]) -> FactorFile:
    if "long_factor" in data:
        layout = "saved" if "method" in data and "rope_parameters" in data else "list"
        return FactorFile(
            layout=layout,
            long_factor=data["long_factor"],
            short_factor=data.get("short_factor"),
            method=data.get("method"),
            critical_index=data.get("critical_index"),
            target_length=data.get("target_length"),
            original_length=data.get("original_length", data.get("original_max_position_embeddings")),
            attention_factor=data.get("attention_factor"),
            base=(data.get("rope_parameters") or {}).get("rope_theta") if layout == "saved" else None,
            saved=data if layout == "saved" else {},
        )
    nested = data.get("rope_parameters") or data.get("rope_scaling")
    if not isinstance(nested, dict):
        raise RopebenchError(
            f"{path} holds no `long_factor` list; give a factors JSON saved by ropebench "
            "search/extend, a HF config.json with longrope scaling, or a LongRoPE CSV"
        )
    return _from_config(path, data)


def _from_config(path: Path, config: dict[str, Any]) -> FactorFile:
    params = configured_rope(config)
    if params["rope_type"] != "longrope" or "long_factor" not in params:
        raise RopebenchError(
            f"{path} is a model config whose RoPE scaling is of type {params['rope_type']!r}, which "
            "holds no per-pair factors; --factors reads longrope configs: for other types use "
            "--method NAME --target-length N"
        )
    return FactorFile(
        layout="hf-config",
        long_factor=params["long_factor"],
        short_factor=params.get("short_factor"),
        target_length=params.get("max_position_embeddings"),
        original_length=params.get("original_max_position_embeddings"),
        attention_factor=params.get("attention_factor"),
        base=params.get("rope_theta"),
    )


def _from_csv(path: Path, text: str) -> FactorFile:
    """One factor list from a LongRoPE CSV: a row, a column, or the same row once per layer."""
    rows = [[cell for cell in re.split(r"[,\s]+", line.strip()) if cell]
            for line in text.splitlines() if line.strip()]
    if not rows:
        raise RopebenchError(f"factors file {path} is empty; give a JSON or CSV file of factors")
    try:
        values = [[float(cell) for cell in row] for row in rows]
    except ValueError as err:
        raise RopebenchError(
            f"cannot read factors file {path}: {err}; a CSV factors file holds numbers only "
            "(or give a JSON file)"
        ) from err
    if all(len(row) == 1 for row in values):
        return FactorFile(layout="csv", long_factor=[row[0] for row in values])
    if any(row != values[0] for row in values[1:]):
        raise RopebenchError(
            f"factors file {path} has {len(values)} rows that differ (per-layer factors); "
            "ropebench applies one list to every layer: keep one row"
        )
    return FactorFile(layout="csv", long_factor=values[0])

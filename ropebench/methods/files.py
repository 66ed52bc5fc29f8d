"""Read rescale factors from a JSON file: a saved `RopeScaling`, a search result, or a HF config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.rope.math import scale_of
from ropebench.rope.scaling import RopeScaling, longrope_scaling, validate_factors
from ropebench.rope.spec import RopeSpec


def load_scaling(path: str | Path, spec: RopeSpec, target_length: int | None = None) -> RopeScaling:
    """`_load_scaling`, with a field of the wrong type (text where a number belongs) as the
    one-line error naming the file."""
    try:
        scaling = _load_scaling(path, spec, target_length)
        scaling.to_dict()
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise RopebenchError(
            f"factors file {path} has a field of the wrong type or value ({err}); numbers must be "
            "numbers: fix it or save it again with `ropebench search`/`extend`"
        ) from err
    import math

    if scaling.attention_factor is not None and not (
        math.isfinite(float(scaling.attention_factor)) and scaling.attention_factor > 0
    ):
        raise RopebenchError(
            f"factors file {path}: attention_factor={scaling.attention_factor} must be a positive "
            "finite number; fix the file"
        )
    return scaling


def _load_scaling(path: str | Path, spec: RopeSpec, target_length: int | None = None) -> RopeScaling:
    """Load and validate factors for the model described by `spec`.

    Accepted layouts:
    - `RopeScaling.to_dict()` (what `search` and `extend` save): used as is;
    - a factor list dict: `long_factor` (+ optional `short_factor`, `critical_index`, `method`,
      `target_length`, `attention_factor`), e.g. a search output or released LongRoPE factors;
    - a HF config.json whose `rope_parameters` / `rope_scaling` is of type `longrope`.
    `target_length`, when given, must agree with the file's (if it has one).
    """
    data = _read_json(Path(path))
    nested = data.get("rope_parameters") or data.get("rope_scaling")
    if "long_factor" not in data and isinstance(nested, dict) and "long_factor" in nested:
        # A HF config: the target is its max_position_embeddings.
        data = {**nested, "target_length": data.get("max_position_embeddings")}
    if "long_factor" not in data:
        raise RopebenchError(
            f"{path} holds no `long_factor` list; give a factors JSON saved by ropebench search/extend"
        )
    target = _agreed_target(path, data.get("target_length"), target_length)
    scale_of(spec, target)
    original = data.get("original_length", data.get("original_max_position_embeddings"))
    if original is not None and int(original) != spec.window:
        raise RopebenchError(
            f"{path} was made for a pretrained window of {original} tokens but this model's is "
            f"{spec.window}; use factors searched for this model"
        )

    if "rope_parameters" in data and "method" in data:
        scaling = RopeScaling.from_dict(data)
        monotone_from = scaling.critical_index if scaling.method == "longrope2" else None
        validate_factors(spec, scaling.long_factor, monotone_from=monotone_from)
        if scaling.short_factor is not None:
            validate_factors(spec, scaling.short_factor)
        return scaling

    return longrope_scaling(
        spec,
        target,
        data["long_factor"],
        data.get("short_factor"),
        method=str(data.get("method", "longrope2")),
        critical_index=data.get("critical_index"),
        provenance="file",
        extra={"source": str(path)},
        attention_factor=data.get("attention_factor"),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise RopebenchError(
            f"factors file {path} does not exist; check the --factors path"
        ) from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RopebenchError(
            f"cannot read factors file {path}: {err}; give a valid JSON file"
        ) from err
    if not isinstance(data, dict):
        raise RopebenchError(f"factors file {path} must hold a JSON object with `long_factor`")
    return data


def _agreed_target(path: str | Path, in_file: Any, given: int | None) -> int:
    if in_file is not None and given is not None and int(in_file) != int(given):
        raise RopebenchError(
            f"{path} holds factors for target length {in_file}, not {given}; "
            f"use --target-length {in_file} or factors searched for {given}"
        )
    target = given if given is not None else in_file
    if target is None:
        raise RopebenchError(f"{path} does not say its target length; pass --target-length")
    return int(target)

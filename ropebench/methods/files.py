"""Load rescale factors from a file (a saved `RopeScaling`, a search result, a HF longrope config,
a released LongRoPE CSV) and check them against the model and the method before any weights load.

Every check ends in one `RopebenchError` line naming the file, the problem and the fix: a list
whose length is not the model's pair count, a window or base the factors were not made for,
non-numbers (booleans and text included), NaN, inf or absurd factors, fractional lengths, an
unknown method, a critical index outside the pairs, descending factors where the method searches
monotone ones, and a file of another method than the one asked for.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.methods.base import available_extenders
from ropebench.methods.factor_formats import FactorFile, read_factor_file
from ropebench.rope.decompose import decompose
from ropebench.rope.math import scale_of
from ropebench.rope.scaling import RopeScaling, longrope_scaling, validate_factors
from ropebench.rope.spec import RopeSpec

# Methods whose factors are a free per-pair list (HF `longrope`): a file that names no method
# holds factors of one of these.
FREE_FORM = ("longrope", "longrope2")
MAX_LENGTH = 1 << 24  # tokens; LongRoPE's longest published target is 2M
MAX_ATTENTION_FACTOR = 100.0  # the bound of every method's attention_factor setting


def load_scaling(
    path: str | Path,
    spec: RopeSpec,
    target_length: int | None = None,
    method: str | None = None,
) -> RopeScaling:
    """The scaling a factors file describes, checked for the model `spec`.

    `target_length`, when given, must agree with the file's (if it has one). `method`, when given
    (`--method`, a plan entry's `method`), must be the file's method; a file that names none
    (a HF config, a CSV, a bare list) takes it, and must then be a free-form method's.
    """
    raw = read_factor_file(Path(path))
    try:
        return _build(Path(path), raw, spec, target_length, method)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise RopebenchError(
            f"factors file {path} has a field of the wrong type or value ({err}); numbers must be "
            "numbers: fix it or save it again with `ropebench search`/`extend`"
        ) from err


def _build(
    path: Path, raw: FactorFile, spec: RopeSpec, target_length: int | None, method: str | None
) -> RopeScaling:
    long = _factors(path, raw.long_factor, "long_factor", spec)
    short = None if raw.short_factor is None else _factors(
        path, raw.short_factor, "short_factor", spec)
    target = _agreed_target(path, raw.target_length, target_length)
    scale = scale_of(spec, target)
    _check_model(path, raw, spec)
    name, critical = _method_and_critical(path, raw, method, spec, long, scale)
    attention = _attention(path, raw.attention_factor)
    if name == "longrope" and raw.layout != "saved":
        _monotone(path, spec, long, 0)
    if raw.layout == "saved" and name not in FREE_FORM:
        return _saved(path, raw, spec, long, short, target, name)
    provenance = str(raw.saved.get("provenance", "file"))
    extra = raw.saved.get("extra") if raw.layout == "saved" else {"source": str(path)}
    if not isinstance(extra, dict):
        raise RopebenchError(f"factors file {path}: `extra` must be an object; fix the file")
    try:
        return longrope_scaling(
            spec, target, long, short, method=name, critical_index=critical,
            provenance=provenance, extra=extra, attention_factor=attention,
        )
    except RopebenchError as err:
        raise RopebenchError(f"factors file {path}: {err}") from err


def _factors(path: Path, values: Any, field: str, spec: RopeSpec) -> tuple[float, ...]:
    if not isinstance(values, list | tuple):
        raise RopebenchError(
            f"factors file {path}: `{field}` must be a list of {spec.n_pairs} numbers, not "
            f"{type(values).__name__}; fix the file"
        )
    try:
        return validate_factors(spec, values)
    except RopebenchError as err:
        raise RopebenchError(f"factors file {path}: {field}: {err}") from err


def _monotone(path: Path, spec: RopeSpec, factors: tuple[float, ...], start: int) -> None:
    try:
        validate_factors(spec, factors, monotone_from=start)
    except RopebenchError as err:
        raise RopebenchError(f"factors file {path}: long_factor: {err}") from err


def _whole(path: Path, value: Any, field: str, low: int = 1, high: int = MAX_LENGTH) -> int:
    """A whole number in [low, high]; booleans, text and fractions are refused, not truncated."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and float(value).is_integer() and low <= value <= high
    if not ok:
        raise RopebenchError(
            f"factors file {path}: {field} is {value!r}; it must be a whole number from {low} to "
            f"{high}: fix the file"
        )
    return int(value)


def _agreed_target(path: Path, in_file: Any, given: int | None) -> int:
    if in_file is not None:
        in_file = _whole(path, in_file, "target_length")
    if in_file is not None and given is not None and in_file != int(given):
        raise RopebenchError(
            f"{path} holds factors for target length {in_file}, not {given}; "
            f"use --target-length {in_file} or factors searched for {given}"
        )
    target = given if given is not None else in_file
    if target is None:
        raise RopebenchError(f"{path} does not say its target length; pass --target-length")
    return int(target)


def _check_model(path: Path, raw: FactorFile, spec: RopeSpec) -> None:
    """The file's pretrained window and base (where it says) are this model's."""
    if raw.original_length is not None:
        original = _whole(path, raw.original_length, "original window")
        if original != spec.window:
            raise RopebenchError(
                f"{path} was made for a pretrained window of {original} tokens but this model's is "
                f"{spec.window}; use factors searched for this model"
            )
    if raw.base is not None:
        ok = isinstance(raw.base, int | float) and not isinstance(raw.base, bool)
        if not ok or not math.isclose(float(raw.base), spec.base, rel_tol=1e-9):
            raise RopebenchError(
                f"{path} was made for rope_theta {raw.base!r} but this model's is {spec.base:g}; "
                "use factors searched for this model"
            )


def _method_and_critical(
    path: Path, raw: FactorFile, requested: str | None, spec: RopeSpec,
    long: tuple[float, ...], scale: float,
) -> tuple[str, int | None]:
    """The file's method (checked against `requested`) and, for LongRoPE2, its critical pair."""
    declared = raw.method
    if declared is not None and (not isinstance(declared, str) or declared not in available_extenders()):
        raise RopebenchError(
            f"factors file {path} names method {declared!r}, which ropebench does not know; known: "
            f"{', '.join(sorted(available_extenders()))}: fix the file's `method`"
        )
    if declared is not None and requested is not None and declared != requested:
        raise RopebenchError(
            f"{path} holds {declared} factors, not {requested}; "
            f"drop --method or use --method {declared}"
        )
    name = declared or requested
    if name is None:  # no method named anywhere: read the list as LongRoPE2 if it decomposes
        parts = decompose(spec, long, scale)
        critical_found = raw.critical_index is not None or (parts.critical_index >= 2 and parts.anchor > 1)
        name = "longrope2" if critical_found else "longrope"
    if raw.layout != "saved" and name not in FREE_FORM:
        raise RopebenchError(
            f"{path} holds a per-pair factor list (HF longrope), which only longrope or longrope2 "
            f"use, not {name}; use --method longrope2 (or longrope), or drop --factors"
        )
    if name != "longrope2":
        if raw.critical_index is not None:
            raise RopebenchError(
                f"factors file {path}: critical_index belongs to longrope2 factors, not {name}; "
                "drop it or use --method longrope2"
            )
        return name, None
    if raw.critical_index is None:
        critical = decompose(spec, long, scale).critical_index
    else:
        critical = _whole(path, raw.critical_index, "critical_index", 0, spec.n_pairs - 1)
    _monotone(path, spec, long, critical)
    return name, critical


def _attention(path: Path, value: Any) -> float | None:
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (math.isfinite(value) and 0 < value <= MAX_ATTENTION_FACTOR):
        raise RopebenchError(
            f"factors file {path}: attention_factor={value!r} must be a positive finite number up "
            f"to {MAX_ATTENTION_FACTOR:g}; fix the file"
        )
    return float(value)


def _saved(
    path: Path, raw: FactorFile, spec: RopeSpec, long: tuple[float, ...],
    short: tuple[float, ...] | None, target: int, name: str,
) -> RopeScaling:
    """A saved scaling of a non-switching method: its own `rope_parameters` kept, checked."""
    scaling = RopeScaling.from_dict(raw.saved)
    params = scaling.rope_parameters
    if not isinstance(params, dict) or not isinstance(params.get("rope_type"), str):
        raise RopebenchError(
            f"factors file {path}: `rope_parameters` must be an object with a rope_type; "
            "save the scaling again with `ropebench extend`"
        )
    _attention(path, scaling.attention_factor)
    if scaling.long_factor != long or scaling.short_factor != short or scaling.target_length != target:
        raise RopebenchError(f"factors file {path} is inconsistent; save it again with `ropebench extend`")
    return scaling

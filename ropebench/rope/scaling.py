"""`RopeScaling`: what a method produces, what patching and export consume.

Also the transformers 5 `rope_parameters` dict that expresses a scaling, the length at which a
switching (LongRoPE-style) config changes factors, and the LongRoPE form every per-pair factor
list can take (`longrope_scaling`: LongRoPE, LongRoPE2, factor files, searches, Phi-3 exports).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.rope.math import check_positive, named_mscale, scale_of, unit_factors
from ropebench.rope.spec import RopeSpec

# Largest factor accepted: a million-fold slower pair already extends any window past 10^9 tokens.
MAX_FACTOR = 1e6


@dataclass
class SearchRecord:
    """What a search found besides its factors and critical index (those are the scaling's own).

    Saved inside the scaling's `extra` under these names, so a scaling file reads the same with or
    without this type; `baseline_spread` (each baseline's fitness on disjoint document sets) is
    added after the search, by the process that writes the result."""

    fitness: str  # the fitness function's name
    best_fitness: float
    fitness_history: list[float]  # the best fitness after each generation, generation 0 first
    evaluations: int  # candidates scored
    seconds: float  # time spent scoring them
    baseline_fitness: dict[str, float]  # analytic methods on the fitness documents
    settings: dict[str, Any]
    baseline_spread: dict[str, list[float]] | None = None

    def to_extra(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["baseline_spread"] is None:
            del data["baseline_spread"]
        return data

    @classmethod
    def split_extra(cls, extra: dict[str, Any]) -> tuple[SearchRecord | None, dict[str, Any]]:
        """(the record saved in `extra`, or None; the rest of `extra`)."""
        names = [f.name for f in dataclasses.fields(cls)]
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        if not all(name in extra for name in required):
            return None, dict(extra)
        record = cls(**{k: extra[k] for k in names if k in extra})
        return record, {k: v for k, v in extra.items() if k not in names}


@dataclass(frozen=True)
class RopeScaling:
    """Everything needed to patch a model with a method, or to export it.

    `long_factor` holds the per-pair factors f_i >= 1 (`inv_freq_i = theta_i / f_i`) used at the
    target length. `short_factor` is set only for switching methods (the LongRoPE family): it is
    used while the sequence fits the pretrained window. `rope_parameters` is the transformers 5
    `rope_parameters` dict that expresses the same scaling, so vanilla transformers can load it.
    """

    method: str
    target_length: int
    original_length: int
    long_factor: tuple[float, ...]
    attention_factor: float
    rope_parameters: dict[str, Any]
    short_factor: tuple[float, ...] | None = None
    critical_index: int | None = None
    provenance: str = "analytic"  # "analytic", "given" (--set params.*), "searched" or "file"
    extra: dict[str, Any] = field(default_factory=dict)
    search: SearchRecord | None = None  # set for a searched scaling

    def __post_init__(self) -> None:
        if self.search is None:  # a record given inside `extra` (a saved file) becomes typed
            search, extra = SearchRecord.split_extra(self.extra)
            object.__setattr__(self, "search", search)
            object.__setattr__(self, "extra", extra)

    @property
    def switches(self) -> bool:
        """True when the RoPE changes once the sequence outgrows the pretrained window."""
        return self.short_factor is not None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["search"]  # saved inside `extra`, as files have always held it
        if self.search is not None:
            data["extra"] = {**data["extra"], **self.search.to_extra()}
        data["long_factor"] = list(self.long_factor)
        data["short_factor"] = None if self.short_factor is None else list(self.short_factor)
        return data

    def identity(self) -> dict[str, Any]:
        """What a result computed with this scaling depends on: `to_dict()` less the search
        record (how the factors were found, and in how many seconds, changes no row)."""
        return dataclasses.replace(self, search=None).to_dict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RopeScaling:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["long_factor"] = tuple(float(x) for x in kwargs["long_factor"])
        if kwargs.get("short_factor") is not None:
            kwargs["short_factor"] = tuple(float(x) for x in kwargs["short_factor"])
        return cls(**kwargs)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))


def hf_rope_parameters(spec: RopeSpec, rope_type: str, **fields: Any) -> dict[str, Any]:
    """A transformers 5 `rope_parameters` dict for `spec` (the base and partial rotary kept)."""
    # partial_rotary_factor is always written: a replaced dict without it would silently rotate
    # the whole head, and Phi-3's config validation requires it.
    return {
        "rope_type": rope_type,
        "rope_theta": spec.base,
        "partial_rotary_factor": spec.partial_rotary_factor,
        **fields,
    }


def switch_length(config) -> int | None:
    """The window past which a switching (`longrope`) config uses its long factors, else None."""
    params = getattr(config, "rope_parameters", None) or {}
    if params.get("rope_type") != "longrope":
        return None
    if list(params.get("short_factor") or []) == list(params.get("long_factor") or []):
        return None
    return int(params["original_max_position_embeddings"])


def validate_factors(
    spec: RopeSpec, factors: Sequence[float], *, monotone_from: int | None = None
) -> tuple[float, ...]:
    """Check a factor list for `spec`: one per pair, finite, positive, at most `MAX_FACTOR`, and
    (from `monotone_from` on) non-decreasing. Returns it as a tuple of floats."""
    words = [f for f in factors if isinstance(f, bool | str)]  # float(True) or float("2") pass
    try:
        if words:
            raise ValueError(f"{words[0]!r} is not a number")
        values = tuple(float(f) for f in factors)
    except (TypeError, ValueError) as err:
        raise RopebenchError(
            f"factor lists must hold numbers only ({err}); fix the factor list"
        ) from err
    if len(values) != spec.n_pairs:
        raise RopebenchError(
            f"factor list has {len(values)} entries but this model has {spec.n_pairs} rotary pairs "
            f"(rotary dim {spec.rotary_dim}); give exactly {spec.n_pairs} factors"
        )
    check_positive(values)
    big = next((i for i, f in enumerate(values) if f > MAX_FACTOR), None)
    if big is not None:
        raise RopebenchError(
            f"factor entry {big} is {values[big]:g}, above {MAX_FACTOR:g}: no extension slows a "
            "pair that much (its angles would vanish); fix the factor list"
        )
    if monotone_from is not None:
        for i in range(max(monotone_from, 0) + 1, len(values)):
            if values[i] < values[i - 1]:
                raise RopebenchError(
                    f"upper-group factors must be non-decreasing from pair {monotone_from}, but pair "
                    f"{i} ({values[i]}) is below pair {i - 1} ({values[i - 1]}); sort or fix them"
                )
    return values


def longrope_scaling(
    spec: RopeSpec,
    target_length: int,
    long_factor: Sequence[float],
    short_factor: Sequence[float] | None = None,
    *,
    method: str = "longrope2",
    critical_index: int | None = None,
    provenance: str = "searched",
    extra: dict[str, Any] | None = None,
    attention_factor: float | None = None,
    mscale: str = "longrope",
    search: SearchRecord | None = None,
) -> RopeScaling:
    """A switching scaling: `short_factor` (default: all 1) up to the window, `long_factor` past it.

    The magnitude is `attention_factor` when given, else the temperature named by `mscale`:
    "longrope" sqrt(1 + ln(s)/ln(L)) (transformers' `longrope` value) or "yarn" 0.1 ln(s) + 1
    (an option of the released LongRoPE2 code). It is written explicitly so the export does not
    depend on max_position_embeddings.
    """
    scale = scale_of(spec, target_length)
    monotone_from = critical_index if method == "longrope2" else None
    long = validate_factors(spec, long_factor, monotone_from=monotone_from)
    short = unit_factors(spec) if short_factor is None else validate_factors(spec, short_factor)
    m = (
        named_mscale(mscale, scale, spec.window)
        if attention_factor is None
        else float(attention_factor)
    )
    if not (math.isfinite(m) and m > 0):
        raise RopebenchError(
            f"attention factor {m} must be finite and positive; fix attention_factor"
        )
    params = hf_rope_parameters(
        spec,
        "longrope",
        short_factor=list(short),
        long_factor=list(long),
        original_max_position_embeddings=spec.window,
        factor=scale,
        attention_factor=m,
    )
    return RopeScaling(
        method=method,
        target_length=target_length,
        original_length=spec.window,
        long_factor=long,
        attention_factor=m,
        rope_parameters=params,
        short_factor=short,
        critical_index=critical_index,
        provenance=provenance,
        extra=dict(extra or {}),
        search=search,
    )

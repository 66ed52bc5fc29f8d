"""LongRoPE (Ding et al. 2024): searched per-pair factors, with a short/long switch at the window.

This module also holds what the LongRoPE family shares: factor validation and the construction
of a switching `RopeScaling` (HF rope_type `longrope`), used by LongRoPE2 and by factor files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.extenders.base import (
    Extender,
    ExtenderConfig,
    RopeScaling,
    hf_rope_parameters,
    register,
)
from ropebench.extenders.rope import (
    RopeSpec,
    check_positive,
    named_mscale,
    scale_of,
    unit_factors,
    yarn_factors,
)


def validate_factors(
    spec: RopeSpec, factors: Sequence[float], *, monotone_from: int | None = None
) -> tuple[float, ...]:
    """Check a factor list for `spec`: one per pair, finite, positive, and (from `monotone_from`
    on) non-decreasing. Returns it as a tuple of floats."""
    try:
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
    )


@dataclass
class LongRopeConfig(ExtenderConfig):
    # Explicit factor lists (one per pair). Without them, `rescale` starts from the NTK-by-parts
    # ramp, the best analytic seed of LongRoPE's search; `search` finds better ones.
    long_factor: tuple[float, ...] | None = None
    short_factor: tuple[float, ...] | None = None
    attention_factor: float | None = None  # None: sqrt(1 + ln(s)/ln(L))


@register
class LongRopeExtender(Extender):
    name = "longrope"
    config_class = LongRopeConfig
    description = "LongRoPE: searched non-uniform factors, short/long switch (HF longrope)."

    def rescale(self, spec: RopeSpec, target_length: int) -> RopeScaling:
        cfg = self.config
        scale = scale_of(spec, target_length)
        given = cfg.long_factor is not None
        long = cfg.long_factor if given else yarn_factors(spec, scale)
        return longrope_scaling(
            spec,
            target_length,
            long,
            cfg.short_factor,
            method=self.name,
            provenance="given" if given else "analytic",
            attention_factor=cfg.attention_factor,
        )

    def search(
        self,
        model,
        tokenizer,
        spec: RopeSpec,
        target_length: int,
        settings=None,
        *,
        checkpoint: Path | None = None,
    ) -> RopeScaling:
        from ropebench.extenders.evolution import SearchSettings, search_longrope

        return search_longrope(
            model,
            tokenizer,
            spec,
            target_length,
            # LongRoPE (v1) searches on plain perplexity of long documents.
            settings or SearchSettings(fitness="ppl"),
            checkpoint=checkpoint,
        )

"""LongRoPE (Ding et al. 2024): searched per-pair factors, with a short/long switch at the window.

This module also holds what the LongRoPE family shares: factor validation and the construction
of a switching `RopeScaling` (HF rope_type `longrope`), used by LongRoPE2 and by factor files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ropebench.methods.base import Extender, ExtenderConfig, Scorer, SearchSettings, register
from ropebench.methods.evolution.settings import EvolutionSettings
from ropebench.rope.math import scale_of, yarn_factors
from ropebench.rope.scaling import RopeScaling, longrope_scaling
from ropebench.rope.spec import RopeSpec
from ropebench.settings import setting


@dataclass
class LongRopeConfig(ExtenderConfig):
    # Explicit factor lists (one per pair). Without them, `rescale` starts from the NTK-by-parts
    # ramp, the best analytic seed of LongRoPE's search; `search` finds better ones.
    long_factor: tuple[float, ...] | None = None
    short_factor: tuple[float, ...] | None = None
    attention_factor: float | None = setting(None, gt=0, max=100)  # None: the `mscale` temperature
    # "longrope" sqrt(1 + ln(s)/ln(L)) or "yarn" 0.1 ln(s) + 1; the search's candidates too.
    mscale: str = setting("longrope", choices=("longrope", "yarn"))


@dataclass
class LongRopeSearchSettings(EvolutionSettings):
    # LongRoPE (v1) searches on plain perplexity of long documents; LongRoPE2 on needle-driven
    # perplexity. Every path (`ropebench search`, a plan, the API) takes this one default.
    fitness: str = "ppl"


@register
class LongRopeExtender(Extender):
    name = "longrope"
    search_settings_class = LongRopeSearchSettings
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
            mscale=cfg.mscale,
        )

    def search(
        self,
        spec: RopeSpec,
        target_length: int,
        scorer: Scorer,
        settings: SearchSettings | None = None,
        *,
        checkpoint: Path | None = None,
    ) -> RopeScaling:
        from ropebench.methods.evolution.ga import search_longrope

        settings = settings or LongRopeSearchSettings()
        if settings.mscale == "longrope" and self.config.mscale != "longrope":
            settings = dataclasses.replace(settings, mscale=self.config.mscale)
        return search_longrope(spec, target_length, scorer, settings, checkpoint=checkpoint)

"""LongRoPE2 (Shang et al. 2025): NTK below the critical pair, searched factors from it on, and
mixed context window training (original RoPE for short rows, rescaled RoPE for long rows)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ropebench.methods.base import (
    Extender,
    ExtenderConfig,
    Scorer,
    SearchSettings,
    TrainingLayout,
    register,
)
from ropebench.methods.evolution.settings import EvolutionSettings
from ropebench.rope.math import critical_index, longrope2_factors, scale_of
from ropebench.rope.scaling import RopeScaling, longrope_scaling, validate_factors
from ropebench.rope.spec import RopeSpec
from ropebench.settings import setting

__all__ = [
    "LongRope2Config",
    "LongRope2Extender",
    "longrope2_factors",
    "longrope_scaling",
    "validate_factors",
]


@dataclass
class LongRope2Config(ExtenderConfig):
    training_keys: ClassVar[tuple[str, ...]] = ("mixed", "per_document_mask_long")
    critical_index: int | None = setting(None, min=0)  # None: d_tcd (the paper); the released search uses d_tcd - 1
    # Factors for pairs critical_index.. (non-decreasing, the paper searches them in [s, 2s]).
    # None: all s, i.e. NTK up to the critical pair and PI from it on, the search's starting point.
    upper: tuple[float, ...] | None = None
    # Attention temperature: "longrope" sqrt(1 + ln(s)/ln(L)) or "yarn" 0.1 ln(s) + 1 (the released
    # code's option); an explicit attention_factor wins over both.
    mscale: str = setting("longrope", choices=("longrope", "yarn"))
    attention_factor: float | None = setting(None, gt=0, max=100)
    # Training: mixed context windows (the paper) or plain fine-tuning (the ablation); long rows
    # may also restart positions and mask per document.
    mixed: bool = True
    per_document_mask_long: bool = False


@register
class LongRope2Extender(Extender):
    name = "longrope2"
    search_settings_class = EvolutionSettings
    config_class = LongRope2Config
    description = "LongRoPE2: NTK below the critical pair, searched above; mixed-window training."

    def rescale(self, spec: RopeSpec, target_length: int) -> RopeScaling:
        cfg = self.config
        scale = scale_of(spec, target_length)
        c = critical_index(spec) if cfg.critical_index is None else cfg.critical_index
        upper = cfg.upper if cfg.upper is not None else (scale,) * (spec.n_pairs - c)
        return longrope_scaling(
            spec,
            target_length,
            longrope2_factors(spec, c, upper),
            method=self.name,
            critical_index=c,
            provenance="given" if cfg.upper is not None else "analytic",
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
        from ropebench.methods.evolution.ga import search_longrope2

        settings = settings or EvolutionSettings()
        if settings.critical_index is None and self.config.critical_index is not None:
            settings = dataclasses.replace(settings, critical_index=self.config.critical_index)
        if settings.mscale == "longrope" and self.config.mscale != "longrope":
            settings = dataclasses.replace(settings, mscale=self.config.mscale)
        return search_longrope2(spec, target_length, scorer, settings, checkpoint=checkpoint)

    def training_layout(self) -> TrainingLayout:
        # Mixed context window training is LongRoPE2's second half; `mixed=false` is the ablation.
        return TrainingLayout(
            mixed=self.config.mixed, per_document_mask_long=self.config.per_document_mask_long
        )

"""Llama-3.1 frequency-band scaling: keep short wavelengths, interpolate long ones, blend between."""

from __future__ import annotations

from dataclasses import dataclass

from ropebench.methods.base import Extender, ExtenderConfig, register
from ropebench.rope.math import llama3_factors, scale_of
from ropebench.rope.scaling import RopeScaling, hf_rope_parameters
from ropebench.rope.spec import RopeSpec
from ropebench.settings import setting


@dataclass
class Llama3Config(ExtenderConfig):
    factor: float | None = setting(None, min=1.0, max=1e6)  # None: s = target / window (Meta: 8)
    low_freq_factor: float = setting(1.0, gt=0, max=1e6)  # wavelengths above window/low_freq_factor are divided by factor
    high_freq_factor: float = setting(4.0, gt=0, max=1e6)  # wavelengths below window/high_freq_factor are kept


@register
class Llama3Extender(Extender):
    name = "llama3"
    config_class = Llama3Config
    description = "Llama-3.1: per-band scaling by wavelength (HF llama3)."

    def rescale(self, spec: RopeSpec, target_length: int) -> RopeScaling:
        cfg = self.config
        scale = scale_of(spec, target_length)  # also rejects targets inside the window
        factor = cfg.factor if cfg.factor is not None else scale
        params = hf_rope_parameters(
            spec,
            "llama3",
            factor=float(factor),
            low_freq_factor=float(cfg.low_freq_factor),
            high_freq_factor=float(cfg.high_freq_factor),
            original_max_position_embeddings=spec.window,
        )
        return RopeScaling(
            method=self.name,
            target_length=target_length,
            original_length=spec.window,
            long_factor=llama3_factors(spec, factor, cfg.low_freq_factor, cfg.high_freq_factor),
            attention_factor=1.0,
            rope_parameters=params,
        )

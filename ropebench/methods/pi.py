"""Position interpolation (Chen et al. 2023): squeeze positions by s, i.e. every f_i = s."""

from __future__ import annotations

from dataclasses import dataclass

from ropebench.methods.base import Extender, ExtenderConfig, register
from ropebench.rope.math import pi_factors, scale_of
from ropebench.rope.scaling import RopeScaling, hf_rope_parameters
from ropebench.rope.spec import RopeSpec
from ropebench.settings import setting


@dataclass
class PIConfig(ExtenderConfig):
    factor: float | None = setting(None, min=1.0, max=1e6)  # None: s = target / window


@register
class PIExtender(Extender):
    name = "pi"
    config_class = PIConfig
    description = "Position interpolation: every frequency divided by s (HF rope_type linear)."

    def rescale(self, spec: RopeSpec, target_length: int) -> RopeScaling:
        scale = scale_of(spec, target_length)  # also rejects targets inside the window
        factor = self.config.factor if self.config.factor is not None else scale
        return RopeScaling(
            method=self.name,
            target_length=target_length,
            original_length=spec.window,
            long_factor=pi_factors(spec, factor),
            attention_factor=1.0,
            rope_parameters=hf_rope_parameters(spec, "linear", factor=float(factor)),
        )

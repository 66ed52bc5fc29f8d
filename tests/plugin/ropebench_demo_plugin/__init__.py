"""A third-party extender, registered only through the `ropebench.extenders` entry point.

Half-PI: every pair slowed by sqrt(s). It exists to prove that plugins are found and usable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ropebench.extenders.base import Extender, ExtenderConfig, RopeScaling, hf_rope_parameters
from ropebench.extenders.rope import RopeSpec, pi_factors, scale_of


@dataclass
class HalfPIConfig(ExtenderConfig):
    power: float = 0.5


class HalfPIExtender(Extender):
    name = "half-pi"
    config_class = HalfPIConfig
    description = "Demo plugin: every frequency divided by s^power."

    def rescale(self, spec: RopeSpec, target_length: int) -> RopeScaling:
        factor = math.pow(scale_of(spec, target_length), self.config.power)
        return RopeScaling(
            method=self.name,
            target_length=target_length,
            original_length=spec.window,
            long_factor=pi_factors(spec, factor),
            attention_factor=1.0,
            rope_parameters=hf_rope_parameters(spec, "linear", factor=factor),
        )

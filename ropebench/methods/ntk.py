"""NTK-aware scaling: a larger base, static (NTK) or growing with the current length (dynamic)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ropebench.errors import RopebenchError
from ropebench.methods.base import Extender, ExtenderConfig, register
from ropebench.rope.math import dynamic_ntk_factors, ntk_base, ntk_factors, scale_of
from ropebench.rope.scaling import RopeScaling, hf_rope_parameters
from ropebench.rope.spec import RopeSpec
from ropebench.settings import setting


@dataclass
class NTKConfig(ExtenderConfig):
    factor: float | None = setting(None, min=1.0, max=1e6)  # None: s = target / window


@register
class NTKExtender(Extender):
    name = "ntk"
    config_class = NTKConfig
    description = "NTK-aware: base raised to b*s^(d/(d-2)) (HF: a new rope_theta)."

    def rescale(self, spec: RopeSpec, target_length: int) -> RopeScaling:
        scale = scale_of(spec, target_length)  # also rejects targets inside the window
        factor = self.config.factor if self.config.factor is not None else scale
        params = hf_rope_parameters(spec, "default")
        params["rope_theta"] = ntk_base(spec, factor)
        if not math.isfinite(params["rope_theta"]):
            raise RopebenchError(f"ntk: factor={factor} makes rope_theta infinite; give a smaller factor")
        return RopeScaling(
            method=self.name,
            target_length=target_length,
            original_length=spec.window,
            long_factor=ntk_factors(spec, factor),
            attention_factor=1.0,
            rope_parameters=params,
            extra={"base": params["rope_theta"]},
        )


@dataclass
class DynamicNTKConfig(ExtenderConfig):
    # transformers' `factor` for rope_type dynamic: b' = b*(a*l/L - (a-1))^(d/(d-2)) at length l.
    # a = 1 makes the base at the target length equal static NTK's for the same target.
    alpha: float = setting(1.0, gt=0, max=1e6)


@register
class DynamicNTKExtender(Extender):
    name = "dynamic-ntk"
    config_class = DynamicNTKConfig
    description = (
        "Dynamic NTK: the NTK base follows the current length past the window (HF dynamic)."
    )

    def rescale(self, spec: RopeSpec, target_length: int) -> RopeScaling:
        scale_of(spec, target_length)
        alpha = float(self.config.alpha)
        return RopeScaling(
            method=self.name,
            target_length=target_length,
            original_length=spec.window,
            # Informative only: the factors the model uses once the sequence reaches the target.
            long_factor=dynamic_ntk_factors(spec, target_length, alpha),
            attention_factor=1.0,
            rope_parameters=hf_rope_parameters(spec, "dynamic", factor=alpha),
        )

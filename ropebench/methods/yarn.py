"""YaRN (Peng et al. 2023) and its ramp without temperature, NTK-by-parts."""

from __future__ import annotations

from dataclasses import dataclass

from ropebench.errors import RopebenchError
from ropebench.methods.base import Extender, ExtenderConfig, register
from ropebench.rope.math import named_mscale, scale_of, yarn_factors
from ropebench.rope.scaling import RopeScaling, hf_rope_parameters
from ropebench.rope.spec import RopeSpec
from ropebench.settings import setting


@dataclass
class YarnConfig(ExtenderConfig):
    factor: float | None = setting(None, min=1.0, max=1e6)  # None: s = target / window
    beta_fast: float = setting(32.0, gt=0, max=1e6)  # pairs with at least this many rotations in the window keep theta
    beta_slow: float = setting(1.0, gt=0, max=1e6)  # pairs with fewer rotations are fully interpolated
    attention_factor: float | None = setting(None, gt=0, max=100)  # None: the `mscale` temperature
    # The temperature when attention_factor is None: YaRN's 0.1*ln(s) + 1, or LongRoPE's
    # sqrt(1 + ln(s)/ln(L)) (so the two methods can be compared at one temperature).
    mscale: str = setting("yarn", choices=("yarn", "longrope"))
    truncate: bool = True  # floor/ceil the ramp ends, as the paper's code


@register
class YarnExtender(Extender):
    name = "yarn"
    config_class = YarnConfig
    description = "YaRN: NTK-by-parts ramp plus attention temperature 0.1*ln(s)+1 (HF yarn)."

    def rescale(self, spec: RopeSpec, target_length: int) -> RopeScaling:
        cfg = self.config
        scale = scale_of(spec, target_length)  # also rejects targets inside the window
        factor = cfg.factor if cfg.factor is not None else scale
        if cfg.beta_slow >= cfg.beta_fast:
            raise RopebenchError(
                f"{self.name}: beta_slow={cfg.beta_slow} must be below beta_fast={cfg.beta_fast}; "
                "e.g. --set params.beta_fast=32 --set params.beta_slow=1"
            )
        m = (cfg.attention_factor if cfg.attention_factor is not None
             else named_mscale(cfg.mscale, factor, spec.window))
        params = hf_rope_parameters(
            spec,
            "yarn",
            factor=float(factor),
            original_max_position_embeddings=spec.window,
            beta_fast=float(cfg.beta_fast),
            beta_slow=float(cfg.beta_slow),
            attention_factor=float(m),
            truncate=bool(cfg.truncate),
        )
        return RopeScaling(
            method=self.name,
            target_length=target_length,
            original_length=spec.window,
            long_factor=yarn_factors(spec, factor, cfg.beta_fast, cfg.beta_slow, cfg.truncate),
            attention_factor=float(m),
            rope_parameters=params,
        )


@dataclass
class NTKByPartsConfig(YarnConfig):
    attention_factor: float | None = setting(1.0, gt=0, max=100)  # the ramp alone, no temperature


@register
class NTKByPartsExtender(YarnExtender):
    name = "ntk-by-parts"
    config_class = NTKByPartsConfig
    description = "NTK-by-parts: YaRN's ramp without temperature (HF yarn, attention_factor 1)."

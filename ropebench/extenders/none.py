"""The baseline: the model's own RoPE, unchanged, run past its window."""

from __future__ import annotations

from ropebench.extenders.base import Extender, RopeScaling, hf_rope_parameters, register
from ropebench.extenders.rope import RopeSpec, scale_of, unit_factors


@register
class NoExtender(Extender):
    name = "none"
    description = "No extension: the original RoPE extrapolated past the pretrained window."

    def rescale(self, spec: RopeSpec, target_length: int) -> RopeScaling:
        scale_of(spec, target_length)  # same target check as every method
        return RopeScaling(
            method=self.name,
            target_length=target_length,
            original_length=spec.window,
            long_factor=unit_factors(spec),
            attention_factor=1.0,
            rope_parameters=hf_rope_parameters(spec, "default"),
        )

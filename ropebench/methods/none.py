"""The baseline: the model's own RoPE, unchanged, run past its window."""

from __future__ import annotations

from ropebench.methods.base import Extender, register
from ropebench.rope.math import scale_of, unit_factors
from ropebench.rope.scaling import RopeScaling, hf_rope_parameters
from ropebench.rope.spec import RopeSpec


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

"""Old import path of the LongRoPE family helpers (see `ropebench.methods.longrope`)."""

from ropebench.methods.longrope import LongRopeExtender
from ropebench.rope.scaling import longrope_scaling, validate_factors

__all__ = ["LongRopeExtender", "longrope_scaling", "validate_factors"]

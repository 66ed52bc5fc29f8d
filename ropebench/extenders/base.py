"""Old import path of the extender interface (see `ropebench.methods.base`)."""

from ropebench.methods.base import Extender, ExtenderConfig, get_extender, register
from ropebench.rope.scaling import RopeScaling, hf_rope_parameters

__all__ = ["Extender", "ExtenderConfig", "RopeScaling", "get_extender", "hf_rope_parameters", "register"]

"""How positions are stretched: RoPE math, the extender interface and its registry.

Importing this package registers every built-in method.
"""

from ropebench.methods import (  # noqa: F401  (each module registers its extenders)
    attention,
    llama3,
    longrope,
    longrope2,
    none,
    ntk,
    pi,
    yarn,
)
from ropebench.methods.base import Extender, ExtenderConfig, available_extenders, get_extender
from ropebench.methods.files import load_scaling
from ropebench.rope.scaling import RopeScaling
from ropebench.rope.spec import RopeSpec

__all__ = [
    "Extender",
    "ExtenderConfig",
    "RopeScaling",
    "RopeSpec",
    "available_extenders",
    "get_extender",
    "load_scaling",
]

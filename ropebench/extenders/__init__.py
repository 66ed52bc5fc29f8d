"""How positions are stretched: RoPE math, the extender interface and its registry.

Importing this package registers every built-in method.
"""

from ropebench.extenders import (  # noqa: F401  (each module registers its extenders)
    llama3,
    longrope,
    longrope2,
    none,
    ntk,
    pi,
    yarn,
)
from ropebench.extenders.base import (
    Extender,
    ExtenderConfig,
    RopeScaling,
    available_extenders,
    get_extender,
)
from ropebench.extenders.files import load_scaling
from ropebench.extenders.rope import RopeSpec

__all__ = [
    "Extender",
    "ExtenderConfig",
    "RopeScaling",
    "RopeSpec",
    "available_extenders",
    "get_extender",
    "load_scaling",
]

"""The public plugin imports of earlier releases (`ropebench.extenders.*`), kept working.

Methods now live in `ropebench.methods`, RoPE math in `ropebench.rope`; new code imports from
there. This package only re-exports, so plugins written against the old paths still load.
"""

from ropebench.methods import (
    Extender,
    ExtenderConfig,
    available_extenders,
    get_extender,
    load_scaling,
)
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

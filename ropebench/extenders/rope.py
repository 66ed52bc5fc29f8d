"""Old import path of the RoPE math (see `ropebench.rope.math` and `ropebench.rope.spec`)."""

from ropebench.rope.math import *  # noqa: F403  (the whole public math module, as before)
from ropebench.rope.spec import PRETRAINED_KEY, RopeSpec  # noqa: F401

"""Training-free attention methods: Self-Extend, Dual Chunk Attention, ReRoPE.

They keep the weights and change which positions attention sees (`ropebench.rope.attention`),
on top of the RoPE of a frequency method (`frequency`, default none: the model's own), e.g.
DCA + YaRN as in Qwen2.5-1M. The scaling they return is the frequency method's, with the
attention method and its resolved settings in `extra["attention"]`; patching a model with it
installs the method (`ropebench.model.attention`). They run on the hf backend only: no model
config expresses them, so `extend` and the vLLM backend refuse them.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from ropebench.errors import RopebenchError
from ropebench.methods.base import Extender, ExtenderConfig, get_extender, register
from ropebench.rope.attention import RUNS_ELSEWHERE
from ropebench.rope.math import scale_of
from ropebench.rope.scaling import RopeScaling
from ropebench.rope.spec import RopeSpec
from ropebench.settings import setting

# Frequency methods whose RoPE does not change with the sequence length (the views re-rotate
# queries and keys with one set of frequencies).
FREQUENCIES = ("none", "pi", "ntk", "yarn", "ntk-by-parts", "llama3")


@dataclass
class AttentionMethodConfig(ExtenderConfig):
    frequency: str = setting("none", choices=FREQUENCIES)  # the RoPE under the attention method


class AttentionExtender(Extender):
    """An attention method over a frequency method's scaling. Subclasses resolve their settings."""

    engines: ClassVar[tuple[str, ...]] = ("hf",)
    trainable: ClassVar[bool] = False  # attention changes at inference only

    def rescale(self, spec: RopeSpec, target_length: int) -> RopeScaling:
        scale_of(spec, target_length)  # same target check as every method
        settings = {"method": self.name, **self.attention_settings(spec, target_length)}
        base = get_extender(self.config.frequency).rescale(spec, target_length)
        return dataclasses.replace(
            base,
            method=self.name,
            extra={**base.extra, "frequency": base.method, "attention": settings},
        )

    @abstractmethod
    def attention_settings(self, spec: RopeSpec, target_length: int) -> dict[str, Any]:
        """The method's settings with every default resolved for this model and target."""


@dataclass
class SelfExtendConfig(AttentionMethodConfig):
    # Keys at least `window` tokens back see floor(position / group_size). None: the smallest
    # group (dividing the window) that keeps every grouped position inside the pretrained window.
    group_size: int | None = setting(None, min=1, max=1_000_000)
    window: int | None = setting(None, min=1, max=1_000_000_000)  # None: a quarter of the window


@register
class SelfExtendExtender(AttentionExtender):
    name = "self_extend"
    config_class = SelfExtendConfig
    description = ("Self-Extend: grouped positions for distant keys, exact within a neighbour "
                   "window (group_size, window).")
    runs_elsewhere = RUNS_ELSEWHERE["self_extend"]

    def attention_settings(self, spec: RopeSpec, target_length: int) -> dict[str, Any]:
        window = self.config.window if self.config.window is not None else max(spec.window // 4, 1)
        group = self.config.group_size
        if group is None:
            group = smallest_group(window, target_length, spec.window)
        if window % group:
            raise RopebenchError(
                f"self_extend: window={window} is not a multiple of group_size={group}; "
                "give a window divisible by the group size (llama.cpp requires it too)"
            )
        return {"group_size": group, "window": window}


def smallest_group(window: int, target_length: int, pretrained: int) -> int:
    """The smallest group size dividing `window` whose largest grouped query position,
    (target - 1) // G + window - window // G, stays below the pretrained window."""
    for group in range(1, window + 1):
        if window % group == 0 and (target_length - 1) // group + window - window // group < pretrained:
            return group
    raise RopebenchError(
        f"self_extend: no group size keeps a {window}-token neighbour window and {target_length} "
        f"tokens inside the {pretrained}-token window; give a smaller params.window"
    )


@dataclass
class DCAConfig(AttentionMethodConfig):
    # Positions restart every chunk_size tokens. None: 3/4 - 1/8 of the window (ChunkLlama's).
    chunk_size: int | None = setting(None, min=1, max=1_000_000_000)
    # The first local_window tokens of a chunk see the previous chunk at exact distances.
    local_window: int | None = setting(None, min=0, max=1_000_000_000)  # None: 1/8 of the window


@register
class DCAExtender(AttentionExtender):
    name = "dca"
    config_class = DCAConfig
    description = ("Dual Chunk Attention: intra-, successive- and inter-chunk positions "
                   "(chunk_size, local_window).")
    runs_elsewhere = RUNS_ELSEWHERE["dca"]

    def attention_settings(self, spec: RopeSpec, target_length: int) -> dict[str, Any]:
        cfg = self.config
        chunk = cfg.chunk_size if cfg.chunk_size is not None else spec.window * 3 // 4 - spec.window // 8
        local = cfg.local_window if cfg.local_window is not None else min(spec.window // 8, chunk)
        if local > chunk:
            raise RopebenchError(
                f"dca: local_window={local} is larger than chunk_size={chunk}; give a local "
                "window of at most the chunk size"
            )
        return {"chunk_size": chunk, "local_window": local}


@dataclass
class ReRoPEConfig(AttentionMethodConfig):
    window: int | None = setting(None, min=1, max=1_000_000_000)  # None: a quarter of the window


@register
class ReRoPEExtender(AttentionExtender):
    name = "rerope"
    config_class = ReRoPEConfig
    description = "ReRoPE: relative positions capped at a window (window)."
    runs_elsewhere = RUNS_ELSEWHERE["rerope"]

    def attention_settings(self, spec: RopeSpec, target_length: int) -> dict[str, Any]:
        window = self.config.window if self.config.window is not None else max(spec.window // 4, 1)
        return {"window": window}

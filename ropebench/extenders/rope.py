"""Pure RoPE math: the spec of a model's rotary embedding and one function per method.

No torch modules and no I/O here. Every method reduces to per-pair factors f_i >= 1
(`inv_freq_i = theta_i / f_i`, `theta_i = base^(-2i/rotary_dim)`) and one magnitude `m` that
multiplies cos and sin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ropebench.errors import RopebenchError


@dataclass(frozen=True)
class RopeSpec:
    """A model's rotary embedding as read from its HF config."""

    base: float
    head_dim: int
    rotary_dim: int  # head_dim x partial_rotary_factor, even
    window: int  # pretrained context window L
    partial_rotary_factor: float = 1.0
    model_type: str = "llama"

    @property
    def n_pairs(self) -> int:
        return self.rotary_dim // 2

    @classmethod
    def from_config(cls, config: Any) -> RopeSpec:
        """Read from a transformers config object or a config.json dict."""
        get = (lambda k, d=None: config.get(k, d)) if isinstance(config, dict) else (
            lambda k, d=None: getattr(config, k, d)
        )
        params = get("rope_parameters") or get("rope_scaling") or {}
        base = params.get("rope_theta", get("rope_theta"))
        if base is None:
            raise RopebenchError(
                "the model config has no rope_theta / rope_parameters: this model does not use RoPE"
            )
        hidden = get("hidden_size")
        heads = get("num_attention_heads")
        head_dim = get("head_dim") or (hidden // heads if hidden and heads else None)
        if not head_dim:
            raise RopebenchError("the model config gives neither head_dim nor hidden_size/num_attention_heads")
        partial = float(params.get("partial_rotary_factor", get("partial_rotary_factor", 1.0)) or 1.0)
        rotary_dim = int(head_dim * partial)
        rotary_dim -= rotary_dim % 2
        window = (
            params.get("original_max_position_embeddings")
            or get("original_max_position_embeddings")
            or get("max_position_embeddings")
        )
        if not window:
            raise RopebenchError("the model config has no max_position_embeddings")
        return cls(
            base=float(base),
            head_dim=int(head_dim),
            rotary_dim=rotary_dim,
            window=int(window),
            partial_rotary_factor=partial,
            model_type=str(get("model_type", "llama")),
        )

    def periods(self) -> list[float]:
        """Period in tokens of every pair: T_i = 2*pi*base^(2i/d)."""
        return [2 * math.pi * self.base ** (2 * i / self.rotary_dim) for i in range(self.n_pairs)]

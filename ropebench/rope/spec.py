"""A model's rotary embedding as its HF config describes it: the only reader of RoPE fields.

`RopeSpec.from_config` takes a transformers config object or a config.json dict; for a model that
ropebench patched it returns the pretrained RoPE remembered under `PRETRAINED_KEY`. With RoPE per
layer type (Gemma-3) it is the RoPE of the layers a method extends; `layout.py` says which layers
those are and what the others carry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.rope.config_checks import check_config
from ropebench.rope.layout import long_range_parameters

# Config key under which a patched model remembers its pretrained RoPE (saved in config.json;
# vanilla transformers keeps it as a plain attribute). Extending again starts from it.
PRETRAINED_KEY = "ropebench_pretrained_rope"

# rope_type values whose `original_max_position_embeddings` is the pretrained window.
_TYPES_WITH_ORIGINAL_WINDOW = ("yarn", "llama3", "longrope")
# Older configs name the longrope type `su` (the first Phi-3 128K releases).
_TYPE_ALIASES = {"su": "longrope"}


@dataclass(frozen=True)
class RopeSpec:
    """A model's rotary embedding as read from its HF config."""

    base: float
    head_dim: int
    rotary_dim: int  # head_dim x partial_rotary_factor, even
    window: int  # pretrained context window L
    partial_rotary_factor: float = 1.0
    model_type: str = "llama"
    rope_type: str = "default"  # the scaling already in the config, if any

    @property
    def n_pairs(self) -> int:
        return self.rotary_dim // 2

    @classmethod
    def from_config(cls, config: Any) -> RopeSpec:
        """Read from a transformers config object or a config.json dict.

        For a model patched by ropebench this is the pretrained RoPE, not the scaled one.
        """

        def get(key: str, default: Any = None) -> Any:
            if isinstance(config, dict):
                return config.get(key, default)
            return getattr(config, key, default)

        check_config(config)
        pretrained = get(PRETRAINED_KEY)
        if isinstance(pretrained, dict):
            return cls(**pretrained)
        params = long_range_parameters(config)
        base = params.get("rope_theta", get("rope_theta"))
        if base is None:
            raise RopebenchError(
                f"the {get('model_type', 'model')} config has no rope_theta / rope_parameters: "
                "this model does not use RoPE; pick a RoPE model (Llama, Qwen, Mistral, Phi-3, ...)"
            )
        hidden = get("hidden_size")
        heads = get("num_attention_heads")
        head_dim = get("head_dim") or (hidden // heads if hidden and heads else None)
        if not head_dim:
            raise RopebenchError(
                "the model config gives neither head_dim nor hidden_size/num_attention_heads; "
                "fix its config.json"
            )
        partial = _positive(
            params.get("partial_rotary_factor", get("partial_rotary_factor", 1.0)) or 1.0,
            "partial_rotary_factor", float,
        )
        if partial > 1:
            raise RopebenchError(f"partial_rotary_factor={partial} is above 1; fix the model's config.json")
        rotary_dim = int(head_dim * partial)
        rotary_dim -= rotary_dim % 2
        rope_type = str(params.get("rope_type", params.get("type", "default")))
        rope_type = _TYPE_ALIASES.get(rope_type, rope_type)
        # Only scaled types carry the pretrained window separately; for `default` (and `dynamic`,
        # which keeps max_position_embeddings at the pretrained length) it is max_position_embeddings.
        # Phi-3 configs always have an `original_max_position_embeddings` attribute (default 4096),
        # which means nothing while rope_type is `default`.
        window = None
        if rope_type in _TYPES_WITH_ORIGINAL_WINDOW:
            window = params.get("original_max_position_embeddings") or get(
                "original_max_position_embeddings"
            )
        window = window or get("max_position_embeddings")
        if not window:
            raise RopebenchError(
                "the model config has no max_position_embeddings; add the pretrained window to config.json"
            )
        base = _positive(base, "rope_theta", float)
        window = _positive(window, "max_position_embeddings", int)
        return cls(
            base=base,
            head_dim=_positive(head_dim, "head_dim", int),
            rotary_dim=rotary_dim,
            window=window,
            partial_rotary_factor=partial,
            model_type=str(get("model_type", "llama")),
            rope_type=rope_type,
        )

    def periods(self) -> list[float]:
        """Period in tokens of every pair: T_i = 2*pi*base^(2i/d)."""
        return [2 * math.pi * self.base ** (2 * i / self.rotary_dim) for i in range(self.n_pairs)]


def _positive(value: Any, name: str, kind: type) -> Any:
    """A config number as `kind`, finite and > 0, or the one-line error naming the field."""
    import math

    try:
        number = float(value)
        ok = math.isfinite(number) and number > 0 and not isinstance(value, bool)
        if kind is int:
            ok = ok and number.is_integer()
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise RopebenchError(
            f"the model config's {name} is {value!r}; it must be a positive "
            f"{'whole ' if kind is int else ''}number: fix config.json"
        )
    return kind(number)


def spec_from_config_dict(config: dict[str, Any]) -> RopeSpec:
    """The RoPE described by a config.json, without loading weights.

    Old configs leave some RoPE fields to transformers' defaults (no rope_theta written); those
    go through the model type's config class to fill them in.
    """
    check_config(config)  # a field of the wrong type is an error, not a reason to fall back
    try:
        return RopeSpec.from_config(config)
    except RopebenchError:
        from transformers import CONFIG_MAPPING

        model_type = config.get("model_type")
        if model_type not in CONFIG_MAPPING:
            raise
        fields = {k: v for k, v in config.items() if k != "model_type"}
        try:
            filled = CONFIG_MAPPING[model_type](**fields)
        except (TypeError, ValueError) as err:  # transformers' own checks of the fields
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise RopebenchError(f"the model's config.json is not a valid {model_type} config "
                                 f"({first}); fix config.json") from err
        return RopeSpec.from_config(filled)


def configured_rope(config: Any) -> dict[str, Any]:
    """The RoPE scaling a config applies, as one flat dict in transformers 5's field names.

    Reads `rope_parameters` or the legacy `rope_scaling` (whose type is `type`), and fills the
    fields that configs keep beside it at the top level (`rope_theta`,
    `original_max_position_embeddings`, `max_position_embeddings`). An unscaled config gives
    `rope_type` "default".
    """

    def get(key: str, default: Any = None) -> Any:
        if isinstance(config, dict):
            return config.get(key, default)
        return getattr(config, key, default)

    nested = get("rope_parameters") or get("rope_scaling") or {}
    params = dict(nested) if isinstance(nested, dict) else {}
    rope_type = str(params.pop("type", None) or params.get("rope_type") or "default")
    params["rope_type"] = _TYPE_ALIASES.get(rope_type, rope_type)
    for key in ("rope_theta", "original_max_position_embeddings", "max_position_embeddings"):
        if params.get(key) is None and get(key) is not None:
            params[key] = get(key)
    return params

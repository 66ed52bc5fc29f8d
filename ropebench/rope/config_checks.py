"""The RoPE-related fields of a config.json, checked for type and range before anything reads them.

A config is user input: a float window, a head count written as text, an unknown key inside
`rope_parameters`, a `partial_rotary_factor` of 0 (silently read as 1 before), an odd rotary
dimension or a `rope_type` transformers does not know would otherwise surface as a traceback
deep inside transformers, or not at all. Each is one line naming the field and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ropebench.errors import RopebenchError

# transformers 5 `RopeParameters` (and the legacy `type`, read as `rope_type`).
ROPE_KEYS = (
    "rope_theta", "rope_type", "type", "partial_rotary_factor", "factor",
    "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow",
    "short_factor", "long_factor", "low_freq_factor", "high_freq_factor", "mscale",
    "mscale_all_dim", "truncate", "mrope_section",
)
# `su` is the name early Phi-3 configs gave longrope.
ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "longrope", "su", "llama3", "proportional")
WHOLE_FIELDS = (
    "max_position_embeddings", "original_max_position_embeddings", "hidden_size",
    "num_attention_heads", "num_key_value_heads", "head_dim", "num_hidden_layers", "vocab_size",
)
POSITIVE_FIELDS = ("rope_theta", "factor", "attention_factor", "beta_fast", "low_freq_factor",
                   "high_freq_factor")
NON_NEGATIVE_FIELDS = ("beta_slow", "mscale", "mscale_all_dim")  # DeepSeek writes mscale 0


def check_config(config: Any) -> None:
    """Raise the one-line error for the first RoPE field of a config.json dict that is of the
    wrong type or out of range. Config objects (already built by transformers) pass through."""
    if not isinstance(config, Mapping):
        if isinstance(config, list | str | int | float | bool) or config is None:
            raise RopebenchError(f"the model's config.json holds a {type(config).__name__}, not "
                                 "a JSON object; point MODEL at a folder with a HF config.json")
        return
    for name in WHOLE_FIELDS:
        _whole(config.get(name), name)
    for key in ("rope_parameters", "rope_scaling"):
        params = config.get(key)
        if params is None:
            continue
        if not isinstance(params, Mapping):
            raise RopebenchError(f"the model config's {key} is {_short(params)}; it must be a "
                                 "mapping like {\"rope_type\": \"default\", \"rope_theta\": 10000}")
        layers = params.values()
        if params and all(isinstance(v, Mapping) for v in layers):
            for layer_type, sub in params.items():  # one mapping per layer type (Gemma 3)
                _check_params(sub, f"{key}.{layer_type}")
        else:
            _check_params(params, key)
    _check_rotary(config)


def _check_params(params: Mapping[str, Any], where: str) -> None:
    unknown = [k for k in params if k not in ROPE_KEYS]
    if unknown:
        raise RopebenchError(f"the model config's {where} has an unknown key {unknown[0]!r}; "
                             f"known: {', '.join(ROPE_KEYS)}: fix config.json")
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in ROPE_TYPES:
        raise RopebenchError(f"the model config's {where}.rope_type is {_short(rope_type)}, which "
                             f"transformers does not know; use one of {', '.join(ROPE_TYPES)}")
    _whole(params.get("original_max_position_embeddings"), f"{where}.original_max_position_embeddings")
    for name in POSITIVE_FIELDS + NON_NEGATIVE_FIELDS:
        _number(params.get(name), f"{where}.{name}", zero=name in NON_NEGATIVE_FIELDS)


def _check_rotary(config: Mapping[str, Any]) -> None:
    """partial_rotary_factor in (0, 1], and a rotary dimension that is even and at least 2."""
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if params and all(isinstance(v, Mapping) for v in params.values()):
        params = next(iter(params.values()))
    partial = params.get("partial_rotary_factor", config.get("partial_rotary_factor"))
    if partial is not None:
        _number(partial, "partial_rotary_factor")
        if partial > 1:
            raise RopebenchError(f"partial_rotary_factor={partial} is above 1; fix the model's "
                                 "config.json (the share of each head that rotates, in (0, 1])")
    head_dim = config.get("head_dim")
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    if head_dim is None and hidden and heads:
        if hidden % heads:
            raise RopebenchError(f"hidden_size {hidden} is not a multiple of num_attention_heads "
                                 f"{heads}, and no head_dim is given; fix config.json")
        head_dim = hidden // heads
    if head_dim is None:
        return
    rotary = int(head_dim * (1.0 if partial is None else partial))
    if rotary < 2:
        raise RopebenchError(f"head_dim {head_dim} x partial_rotary_factor {partial} leaves no "
                             "rotary pair; fix partial_rotary_factor in config.json")
    if rotary % 2:
        raise RopebenchError(f"the rotary dimension head_dim {head_dim} x partial_rotary_factor "
                             f"{1.0 if partial is None else partial} = {rotary} is odd; RoPE "
                             "rotates pairs: fix head_dim or partial_rotary_factor in config.json")


def _whole(value: Any, name: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise RopebenchError(f"the model config's {name} is {_short(value)}; it must be a "
                             "positive whole number (a JSON integer): fix config.json")


def _number(value: Any, name: str, zero: bool = False) -> None:
    if value is None:
        return
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value < 0 or (value == 0 and not zero)):
        raise RopebenchError(f"the model config's {name} is {_short(value)}; it must be a "
                             f"{'non-negative' if zero else 'positive'} finite number: fix "
                             "config.json")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."

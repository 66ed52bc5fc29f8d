"""Which layers carry which RoPE: the per-layer-type half of reading a config's RoPE fields.

`RopeSpec` (spec.py) describes the RoPE a method extends; this module says where it sits. The
layouts transformers 5 configs write:
- one flat `rope_parameters` for every layer (Llama, Qwen, Mistral, Phi-3). One rotary module
  then serves every layer, sliding-window ones included, so a method changes them all;
- `rope_parameters` keyed by the names in `layer_types` (Gemma-3: `sliding_attention` with its
  own local base and `full_attention`); a `None` entry is a layer type without RoPE;
- NoPE layers listed by `no_rope_layers` next to a flat dict (SmolLM3, Llama-4: 1 = RoPE, 0 = no
  position encoding at all).

With per-type parameters a method extends the types that carry the long-range signal, those whose
attention is not bounded by a window (Gemma-3's own `rope_scaling` goes to `full_attention` only):
a local layer never sees a distance past its window, so its RoPE stays as pretrained.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ropebench.errors import RopebenchError

if TYPE_CHECKING:
    from ropebench.rope.spec import RopeSpec

# Layer types whose attention span is bounded (transformers' names), so they keep their RoPE.
LOCAL_TYPES = frozenset({"sliding_attention", "chunked_attention"})
ALL_LAYERS = "all"  # the group name of a config without `layer_types`


@dataclass(frozen=True)
class LayerGroup:
    """Layers of one type that share one RoPE (or none)."""

    name: str  # the layer type, or `all`
    layers: tuple[int, ...]
    base: float | None  # None: no RoPE in these layers (NoPE)
    rotary_dim: int  # 0 without RoPE
    extended: bool  # a method changes this group's RoPE
    span: int | None = None  # the longest distance its attention sees (sliding window), else None

    @property
    def n_pairs(self) -> int:
        return self.rotary_dim // 2


def _get(config: Any, key: str, default: Any = None) -> Any:
    if isinstance(config, dict):
        return config.get(key, default)
    return getattr(config, key, default)


def nested_types(config: Any) -> list[str]:
    """The layer types `rope_parameters` is keyed by; empty for a flat dict."""
    params = _get(config, "rope_parameters")
    types = set(_get(config, "layer_types") or ())
    if not isinstance(params, dict) or not types:
        return []
    return [key for key in params if key in types]


def extended_types(config: Any) -> list[str]:
    """The keys of a nested `rope_parameters` that a method replaces: every non-local type."""
    return [name for name in nested_types(config) if name not in LOCAL_TYPES]


def long_range_parameters(config: Any) -> dict[str, Any]:
    """The RoPE parameters of the layers a method extends (a copy); {} when there are none."""
    nested = nested_types(config)
    if not nested:
        return dict(_get(config, "rope_parameters") or _get(config, "rope_scaling") or {})
    params = _get(config, "rope_parameters")
    chosen = [params[name] for name in extended_types(config) if params[name] is not None]
    if not chosen:
        raise RopebenchError(
            f"the {_get(config, 'model_type', 'model')} config has RoPE only in its local layers "
            f"({', '.join(nested)}); its long-range layers have none to extend, so pick another model"
        )
    if any(other != chosen[0] for other in chosen[1:]):
        raise RopebenchError(
            f"the {_get(config, 'model_type', 'model')} config gives its long-range layer types "
            "different RoPE parameters; ropebench extends one RoPE, so fix config.json"
        )
    return dict(chosen[0])


def scaled_parameters(config: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The `rope_parameters` to write for a scaling whose own dict is `params`: `params` itself
    for a flat config, else the config's per-type dict with the extended types replaced."""
    if not nested_types(config):
        return copy.deepcopy(params)
    replaced = copy.deepcopy(dict(_get(config, "rope_parameters")))
    for name in extended_types(config):
        if replaced[name] is not None:
            replaced[name] = copy.deepcopy(params)
    return replaced


def _uses_rope(config: Any, count: int) -> list[bool]:
    flags = _get(config, "no_rope_layers")  # 1 = RoPE, 0 = NoPE (SmolLM3's and Llama-4's reading)
    if not flags:
        return [True] * count
    return [bool(flags[i]) if i < len(flags) else True for i in range(count)]


def layer_groups(config: Any, spec: RopeSpec) -> tuple[LayerGroup, ...]:
    """Every layer of the model grouped by type and RoPE, with what a method does to each.

    `spec` is the pretrained RoPE of the extended layers (also after a patch changed them)."""
    count = int(_get(config, "num_hidden_layers") or 0)
    types = list(_get(config, "layer_types") or [ALL_LAYERS] * count)
    rope = _uses_rope(config, len(types))
    nested = set(nested_types(config))
    params = _get(config, "rope_parameters") or {}
    partial_default = _get(config, "partial_rotary_factor") or 1.0
    window = _get(config, "sliding_window")
    keys: dict[tuple[str, bool], list[int]] = {}
    for index, (name, has_rope) in enumerate(zip(types, rope, strict=True)):
        if name in nested and params[name] is None:
            has_rope = False
        keys.setdefault((name, has_rope), []).append(index)
    groups = []
    for (name, has_rope), layers in keys.items():
        span = int(window) if name in LOCAL_TYPES and window else None
        own = name in nested and name in LOCAL_TYPES
        base, rotary_dim = None, 0
        if has_rope and own:
            partial = params[name].get("partial_rotary_factor", partial_default) or 1.0
            base = float(params[name]["rope_theta"])
            rotary_dim = int(spec.head_dim * float(partial))
            rotary_dim -= rotary_dim % 2
        elif has_rope:
            base, rotary_dim = spec.base, spec.rotary_dim
        groups.append(LayerGroup(name, tuple(layers), base, rotary_dim,
                                 extended=has_rope and not own, span=span))
    return tuple(groups)


def normalized_config(config: dict[str, Any]) -> Any:
    """A config.json dict through its transformers config class, which fills in what older files
    leave implicit (Gemma-3's `sliding_window_pattern` and `rope_local_base_freq` become
    `layer_types` and per-type `rope_parameters`); the dict itself when the class refuses it."""
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        return config
    try:
        return CONFIG_MAPPING[model_type](**{k: v for k, v in config.items() if k != "model_type"})
    except Exception:  # noqa: BLE001  (a config its class rejects is read as written)
        return config


def change_of(group: LayerGroup) -> str:
    """What a method does to a group, in words."""
    if group.base is None:
        return "no RoPE: unchanged"
    if group.extended:
        return "extended"
    return f"kept (attends {group.span} tokens)" if group.span else "kept"

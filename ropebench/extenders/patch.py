"""Apply a `RopeScaling` to a loaded HF model, and generate across the short/long switch.

The patch goes through the model's own config: `rope_parameters` is replaced by the scaling's
transformers 5 dict and the rotary module is rebuilt from it, so the patched model is exactly
what vanilla transformers builds from the exported config.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch

from ropebench.errors import RopebenchError
from ropebench.extenders.base import RopeScaling
from ropebench.extenders.rope import PRETRAINED_KEY, RopeSpec

# transformers' Phi-3 config accepts only rope_type default or longrope.
_LONGROPE_ONLY_MODELS = {"phi3"}


def spec_of(model) -> RopeSpec:
    """The model's pretrained RoPE, also after `apply_scaling` (and after save/load)."""
    return RopeSpec.from_config(model.config)


def spec_from_config_dict(config: dict[str, Any]) -> RopeSpec:
    """The RoPE described by a config.json, without loading weights.

    Old configs leave some RoPE fields to transformers' defaults (no rope_theta written); those
    go through the model type's config class to fill them in.
    """
    try:
        return RopeSpec.from_config(config)
    except RopebenchError:
        from transformers import CONFIG_MAPPING

        model_type = config.get("model_type")
        if model_type not in CONFIG_MAPPING:
            raise
        fields = {k: v for k, v in config.items() if k != "model_type"}
        return RopeSpec.from_config(CONFIG_MAPPING[model_type](**fields))


def apply_scaling(model, scaling: RopeScaling) -> None:
    """Patch `model` in place: new `rope_parameters`, `max_position_embeddings`, rotary module.

    The rotary inverse frequencies are float32 whatever the model dtype (a bf16 inv_freq gives
    angle errors of ~100 rad at position 100K).
    """
    spec = spec_of(model)
    if scaling.original_length != spec.window or len(scaling.long_factor) != spec.n_pairs:
        raise RopebenchError(
            f"the {scaling.method} scaling was made for a {scaling.original_length}-token window and "
            f"{len(scaling.long_factor)} pairs, but this model has {spec.window} and {spec.n_pairs}; "
            "rescale or search again for this model"
        )
    params = hf_parameters_for(spec, scaling)
    config = model.config
    config.rope_parameters = copy.deepcopy(params)
    # `dynamic` reads max_position_embeddings as the pretrained window; `none` keeps the model as is.
    keep_window = params["rope_type"] == "dynamic" or scaling.method == "none"
    config.max_position_embeddings = spec.window if keep_window else scaling.target_length
    if hasattr(config, "original_max_position_embeddings"):
        # Phi-3 reads this attribute (default 4096) before rope_parameters for its switch.
        config.original_max_position_embeddings = spec.window
    setattr(config, PRETRAINED_KEY, dataclasses.asdict(spec))
    _rebuild_rotary_modules(model)


def hf_parameters_for(spec: RopeSpec, scaling: RopeScaling) -> dict[str, Any]:
    """The scaling's `rope_parameters`, expressed in a rope_type this model type accepts."""
    params = scaling.rope_parameters
    if spec.model_type not in _LONGROPE_ONLY_MODELS or params["rope_type"] in (
        "default",
        "longrope",
    ):
        return params
    if params["rope_type"] == "dynamic":
        raise RopebenchError(
            f"{spec.model_type} models accept only default and longrope RoPE in transformers, and "
            "dynamic NTK depends on the current length; use ntk (static) for this model"
        )
    # Static per-pair factors are exactly a longrope with equal short and long lists.
    from ropebench.extenders.longrope import longrope_scaling

    same = longrope_scaling(
        spec,
        scaling.target_length,
        scaling.long_factor,
        scaling.short_factor or scaling.long_factor,
        method=scaling.method,
        attention_factor=scaling.attention_factor,
    )
    return same.rope_parameters


def _rebuild_rotary_modules(model) -> None:
    """Replace every rotary embedding module by a fresh transformers one built from the config.

    A custom module put in place of transformers' (the mixed-window training module) is replaced
    too, by the rotary class defined next to its parent (e.g. `LlamaRotaryEmbedding` for
    `LlamaModel`), which undoes it.
    """
    replaced = 0
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if not type(child).__name__.endswith("RotaryEmbedding"):
                continue
            cls = type(child) if _from_transformers(type(child)) else _rotary_class_of(parent)
            try:
                fresh = cls(config=model.config)
            except TypeError as err:
                raise RopebenchError(
                    f"cannot rebuild {cls.__name__} from the config ({err}); "
                    "this architecture is not supported for patching"
                ) from err
            device = next((b.device for b in child.buffers()), None)
            # .to(device) moves buffers without touching their float32 dtype.
            setattr(parent, child_name, fresh.to(device) if device is not None else fresh)
            replaced += 1
    if replaced == 0:
        raise RopebenchError(
            f"found no rotary embedding module in {type(model).__name__}; "
            "this model does not use RoPE in a form ropebench can patch"
        )


def _from_transformers(cls: type) -> bool:
    return cls.__module__.startswith("transformers")


def _rotary_class_of(parent: torch.nn.Module) -> type:
    """The transformers rotary class defined in the module of `parent`'s class."""
    import sys

    namespace = vars(sys.modules[type(parent).__module__])
    found = [
        obj
        for name, obj in namespace.items()
        if name.endswith("RotaryEmbedding")
        and isinstance(obj, type)
        and issubclass(obj, torch.nn.Module)
        and _from_transformers(obj)
    ]
    if len(found) != 1:
        raise RopebenchError(
            f"cannot tell which rotary class {type(parent).__name__} uses; "
            "reload the model instead of patching it again"
        )
    return found[0]


def switch_length(config) -> int | None:
    """The window past which a switching (`longrope`) config uses its long factors, else None."""
    params = getattr(config, "rope_parameters", None) or {}
    if params.get("rope_type") != "longrope":
        return None
    if list(params.get("short_factor") or []) == list(params.get("long_factor") or []):
        return None
    return int(params["original_max_position_embeddings"])


@torch.no_grad()
def generate(
    model,
    input_ids: torch.LongTensor,
    attention_mask: torch.Tensor | None = None,
    max_new_tokens: int = 32,
    **kwargs: Any,
) -> torch.LongTensor:
    """Greedy `model.generate` that returns only the new tokens `(batch, new)`.

    With a switching scaling, the step whose input first exceeds the pretrained window L must see
    every earlier key rotated with the long factors, but the KV cache holds them rotated with the
    short ones. So generation stops when the sequence reaches L + 1 tokens and resumes with a fresh
    prefill of the whole sequence (transformers does this only for Phi-3). Rows are left-padded;
    the switch is decided for the whole batch by its longest row, as transformers does.
    """
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    kwargs = {"do_sample": False, **kwargs}
    generation_config = model.generation_config
    eos = kwargs.get("eos_token_id", generation_config.eos_token_id)
    pad = kwargs.get("pad_token_id", generation_config.pad_token_id)
    if pad is None:
        pad = eos[0] if isinstance(eos, list) else eos
    kwargs["pad_token_id"] = pad

    window = switch_length(model.config)
    longest = int(attention_mask.sum(-1).max())
    first = max_new_tokens
    if window is not None and longest <= window:
        # Inputs of up to L tokens use the short factors; the forward on L + 1 tokens is the first long one.
        first = min(max_new_tokens, window + 1 - longest)

    new = _generate_new(model, input_ids, attention_mask, first, kwargs)
    if first == max_new_tokens or new.shape[1] < first:  # no switch, or every row already stopped
        return new
    input_ids = torch.cat([input_ids, new], dim=1)
    attention_mask = torch.cat([attention_mask, torch.ones_like(new)], dim=1)
    rest = _generate_new(model, input_ids, attention_mask, max_new_tokens - first, kwargs)
    return _pad_after_eos(torch.cat([new, rest], dim=1), eos, pad)


def _generate_new(
    model, input_ids, attention_mask, max_new_tokens: int, kwargs
) -> torch.LongTensor:
    out = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens, **kwargs
    )
    return out[:, input_ids.shape[1] :]


def _pad_after_eos(
    tokens: torch.LongTensor, eos: int | list[int] | None, pad: int
) -> torch.LongTensor:
    """Rows that stopped before the re-prefill kept going in the second call: blank them again."""
    if eos is None:
        return tokens
    eos_ids = torch.tensor(eos if isinstance(eos, list) else [eos], device=tokens.device)
    is_eos = torch.isin(tokens, eos_ids)  # (batch, new)
    after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0  # strictly after the first EOS
    return tokens.masked_fill(after_eos, pad)

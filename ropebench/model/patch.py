"""Apply a `RopeScaling` to a loaded HF model, and generate across the short/long switch.

The patch goes through the model's own config: `rope_parameters` is replaced by the scaling's
transformers 5 dict and the rotary module is rebuilt from it, so the patched model is exactly
what vanilla transformers builds from the exported config.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ropebench.errors import RopebenchError
from ropebench.model.attention import install_attention
from ropebench.rope.layout import scaled_parameters
from ropebench.rope.scaling import RopeScaling
from ropebench.rope.spec import PRETRAINED_KEY, RopeSpec

# transformers' Phi-3 config accepts only rope_type default or longrope.
_LONGROPE_ONLY_MODELS = {"phi3"}


def spec_of(model) -> RopeSpec:
    """The model's pretrained RoPE, also after `apply_scaling` (and after save/load)."""
    return RopeSpec.from_config(model.config)


def apply_scaling(model, scaling: RopeScaling) -> None:
    """Patch `model` in place: new `rope_parameters`, `max_position_embeddings`, rotary module,
    and the attention method the scaling carries (`extra["attention"]`; none undoes one).

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
    # Per-layer-type configs (Gemma-3) get the scaling on their long-range types only.
    config.rope_parameters = scaled_parameters(config, params)
    # `dynamic` reads max_position_embeddings as the pretrained window; `none` keeps the model as is.
    keep_window = params["rope_type"] == "dynamic" or scaling.method == "none"
    config.max_position_embeddings = spec.window if keep_window else scaling.target_length
    if hasattr(config, "original_max_position_embeddings"):
        # Phi-3 reads this attribute (default 4096) before rope_parameters for its switch.
        config.original_max_position_embeddings = spec.window
    setattr(config, PRETRAINED_KEY, dataclasses.asdict(spec))
    _rebuild_rotary_modules(model)
    install_attention(model, scaling.extra.get("attention"))


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
    from ropebench.rope.scaling import longrope_scaling

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

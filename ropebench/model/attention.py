"""Run a training-free attention method inside a transformers model, through its attention interface.

transformers 5 models look their attention function up by `config._attn_implementation` in
`ALL_ATTENTION_FUNCTIONS`. ropebench registers one function there, `ropebench`, and points the
config at it; the method and its settings sit in `config.ropebench_attention`. The model class,
its weights and its rotary module stay transformers' own.

The function receives queries and keys already rotated at their true positions (with the
frequencies and attention factor of whatever RoPE the config holds). A view of the method
(`ropebench.rope.attention`) wants them at other positions: since RoPE is a rotation, rotating a
rotated vector by (new - true) positions gives exactly the vector rotated at the new position, so
every method composes with any static frequency method (PI, NTK, YaRN, Llama-3) for free. Scores
are taken view by view, a block of queries at a time, so memory stays at block x keys.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from ropebench.errors import RopebenchError
from ropebench.rope.attention import attention_views

IMPLEMENTATION = "ropebench"
SETTINGS_KEY = "ropebench_attention"  # config attribute: {"method": ..., its settings, "restore": ...}
QUERY_BLOCK = 512  # queries scored at once: caps the scores at heads x QUERY_BLOCK x keys


def install_attention(model, settings: dict[str, Any] | None) -> None:
    """Route `model`'s attention through the method in `settings`, or back to the model's own
    implementation when `settings` is None."""
    config = model.config
    current = getattr(config, SETTINGS_KEY, None)
    if settings is None:
        if current is not None:
            model.set_attn_implementation(current["restore"])
            delattr(config, SETTINGS_KEY)
        return
    _register()
    restore = current["restore"] if current is not None else config._attn_implementation
    try:
        model.set_attn_implementation(IMPLEMENTATION)
    except (ValueError, KeyError, ImportError) as err:
        raise RopebenchError(
            f"{type(model).__name__} does not route attention through transformers' attention "
            f"interface ({err}); {settings.get('method')} supports Llama-family models"
        ) from err
    setattr(config, SETTINGS_KEY, {**settings, "restore": restore})


def attention_settings(model) -> dict[str, Any] | None:
    """The attention method installed on `model` (without the implementation to restore)."""
    current = getattr(model.config, SETTINGS_KEY, None)
    return None if current is None else {k: v for k, v in current.items() if k != "restore"}


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(IMPLEMENTATION, view_attention_forward)
    # Boolean masks (None when plain causal), as for sdpa: padding is honoured.
    AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


def view_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,  # (B, H, Tq, D), rotated at the true positions
    key: torch.Tensor,  # (B, KV, Tk, D), the cache included
    value: torch.Tensor,  # (B, KV, Tk, D)
    attention_mask: torch.Tensor | None,  # (B, 1, Tq, Tk) bool, or None for plain causal
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature; returns (B, Tq, H, D) and no weights."""
    settings = getattr(module.config, SETTINGS_KEY)
    q_pos, k_pos = _positions(kwargs.get("position_ids"), query, key)
    inv_freq = _inv_freq(module.config, query.device)  # (pairs,)
    groups = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)  # (B, H, Tk, D)
    value = value.repeat_interleave(groups, dim=1)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    keys: dict[int, torch.Tensor] = {}  # view index -> keys at its positions (B, H, Tk, D)
    out = []
    for start in range(0, query.shape[2], QUERY_BLOCK):
        block = slice(start, start + QUERY_BLOCK)
        scores = torch.zeros((), device=query.device)  # -> (B, H, tq, Tk) float32
        # A view's key positions depend on the keys only, so each view's keys rotate once.
        for index, view in enumerate(attention_views(settings, q_pos[:, block], k_pos)):
            use = view.use[:, None]  # (B, 1, tq, Tk)
            if not bool(use.any()):
                continue
            if index not in keys:
                keys[index] = _rotate(key, view.key - k_pos, inv_freq)
            q = _rotate(query[:, :, block], view.query - q_pos[:, block], inv_freq)
            s = (q @ keys[index].transpose(-1, -2)).float() * scaling
            scores = torch.where(use, s, scores)
        allowed = _allowed(attention_mask, q_pos[:, block], k_pos, block)  # (B, 1, tq, Tk)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        probs = torch.softmax(scores, dim=-1).to(value.dtype)
        probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
        out.append(probs @ value)  # (B, H, tq, D)
    return torch.cat(out, dim=2).transpose(1, 2).contiguous(), None


def _positions(
    position_ids: torch.Tensor | None, query: torch.Tensor, key: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """True positions of the queries (B, Tq) and keys (B, Tk), counted back from the last query:
    queries are the last Tq keys and a row's positions run on by one. Left padding (whatever
    positions it was given) gets negative positions, which the mask hides."""
    if position_ids is None:
        raise RopebenchError("the attention methods need the model to pass position_ids to its "
                             "attention function (transformers 5 Llama-family models do)")
    last = position_ids.to(query.device)[:, -1:].expand(query.shape[0], 1)  # (B, 1)
    back = torch.arange(key.shape[2] - 1, -1, -1, device=query.device)  # (Tk,) keys after each
    k_pos = last - back  # (B, Tk)
    return k_pos[:, -query.shape[2]:], k_pos


def _allowed(
    mask: torch.Tensor | None, q_pos: torch.Tensor, k_pos: torch.Tensor, block: slice
) -> torch.Tensor:
    """Pairs a block of queries may attend to: causal by position, and the model's mask (rows
    `block`) when it gave one. -> (B, 1, tq, Tk) bool."""
    causal = (k_pos[:, None, :] <= q_pos[:, :, None])[:, None]  # (B, 1, tq, Tk)
    if mask is None:
        return causal
    if mask.dtype != torch.bool:  # an additive mask: 0 where allowed
        mask = mask == 0
    return causal & mask[:, :, block, -k_pos.shape[1]:]


def _rotate(x: torch.Tensor, shift: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotate the rotary part of `x` (B, H, T, D) further by `shift` (B, T) positions, in
    transformers' rotate-half layout; a zero shift returns `x` itself (bit-exact)."""
    if not bool(shift.any()):
        return x
    rotary = 2 * inv_freq.shape[0]
    angles = shift[:, None, :, None].float() * inv_freq  # (B, 1, T, pairs)
    cos = torch.cat((angles.cos(), angles.cos()), dim=-1).to(x.dtype)  # (B, 1, T, rotary)
    sin = torch.cat((angles.sin(), angles.sin()), dim=-1).to(x.dtype)
    part, rest = x[..., :rotary], x[..., rotary:]
    half = rotary // 2
    turned = torch.cat((-part[..., half:], part[..., :half]), dim=-1)
    return torch.cat((part * cos + turned * sin, rest), dim=-1)


_INV_FREQ: dict[str, torch.Tensor] = {}


def _inv_freq(config, device: torch.device) -> torch.Tensor:
    """The rotary inverse frequencies the model's rotary module builds from this config (float32),
    computed with transformers' own functions and cached per config and RoPE."""
    params = config.rope_parameters
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    cache_key = json.dumps([head_dim, config.max_position_embeddings, params], sort_keys=True,
                           default=str)
    if cache_key not in _INV_FREQ:
        if params.get("rope_type") in ("dynamic", "longrope"):
            raise RopebenchError(
                f"attention methods need a static RoPE; rope_type {params['rope_type']} changes "
                "with the sequence length (compose with none, pi, ntk, yarn or llama3)"
            )
        if params.get("rope_type", "default") == "default":
            dim = int(head_dim * params.get("partial_rotary_factor", 1.0))
            base = params["rope_theta"]
            inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
        else:
            from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

            inv, _ = ROPE_INIT_FUNCTIONS[params["rope_type"]](config, "cpu")
        _INV_FREQ[cache_key] = inv.float()
    return _INV_FREQ[cache_key].to(device)

"""Mixed context window rotary embedding: short or long factors chosen per packed sequence.

transformers' `longrope` rotary module picks short or long factors once per forward, from the
largest position in the whole batch. LongRoPE2's mixed context window training needs the choice
per packed row: rows of short documents (positions restarting at 0 for each document) keep the
original RoPE, rows of long documents use the rescaled one. This module makes the choice per
*packed sequence* (a run of consecutive positions), with HF's own rule applied to each sequence:
long factors iff the sequence's largest position + 1 exceeds the pretrained window. With the
packing of `ropebench.training.data` that is exactly the paper's per-row rule, and it still
holds when rows are flattened into one sequence for flash-attn varlen kernels.
"""

from __future__ import annotations

import torch
from torch import nn

from ropebench.errors import RopebenchError
from ropebench.rope.scaling import RopeScaling


def sequence_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """Index of the packed sequence each token belongs to: a new one starts where positions do not
    continue by +1. (B, T) -> (B, T) (0-based within each row)."""
    previous = torch.cat([position_ids[:, :1] - 1, position_ids[:, :-1]], dim=1)  # (B, T)
    return (position_ids != previous + 1).cumsum(dim=1)  # the first token always continues


def long_tokens(position_ids: torch.Tensor, original_length: int) -> torch.Tensor:
    """True where a token's packed sequence reaches past the pretrained window. (B, T) -> (B, T) bool."""
    seq = sequence_ids(position_ids)  # (B, T)
    batch, length = position_ids.shape
    # Positions grow inside a sequence, so its largest position is its length - 1 from the start.
    last = torch.full((batch, length), -1, dtype=position_ids.dtype, device=position_ids.device)
    last = last.scatter_reduce(1, seq, position_ids, reduce="amax")  # (B, T) per sequence slot
    return last.gather(1, seq) + 1 > original_length


def packed_causal_mask(position_ids: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Attention mask that is causal inside each packed sequence and blocks attention across
    sequences. (B, T) -> (B, 1, T, T), a 4D mask transformers passes to attention as is.

    Boolean (True = attend) for sdpa; with `dtype`, additive (0 or the dtype's minimum), which is
    what eager attention adds to its scores.
    """
    seq = sequence_ids(position_ids)  # (B, T)
    length = position_ids.shape[1]
    same = seq[:, :, None] == seq[:, None, :]  # (B, T, T)
    causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()  # (T, T)
    allowed = (same & causal)[:, None]  # (B, 1, T, T)
    if dtype is None:
        return allowed
    zeros = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return zeros.masked_fill(~allowed, torch.finfo(dtype).min)


class MixedRotaryEmbedding(nn.Module):
    """Drop-in for `model.model.rotary_emb`: (x, position_ids) -> (cos, sin), each (B, T, rotary_dim).

    `attention_factor` multiplies cos and sin of both short and long sequences, as transformers'
    longrope module does at inference, so training sees what the exported model will compute.
    With `n_hat > 0` (LongRoPE v1) the first `n_hat` positions of a long sequence keep the short
    (original) frequencies.
    """

    def __init__(
        self,
        short_inv_freq: torch.Tensor,
        long_inv_freq: torch.Tensor,
        attention_factor: float,
        original_length: int,
        n_hat: int = 0,
    ):
        super().__init__()
        if short_inv_freq.shape != long_inv_freq.shape:
            raise RopebenchError("short and long factors must have one value per rotary pair each")
        # float32 always: bf16 frequencies give angle errors of many radians at long positions.
        self.register_buffer("short_inv_freq", short_inv_freq.float(), persistent=False)
        self.register_buffer("long_inv_freq", long_inv_freq.float(), persistent=False)
        self.attention_scaling = float(attention_factor)
        self.original_length = int(original_length)
        self.n_hat = int(n_hat)

    @classmethod
    def from_scaling(cls, scaling: RopeScaling, spec, n_hat: int = 0) -> MixedRotaryEmbedding:
        from ropebench.rope.math import inv_freq_from_factors

        short = scaling.short_factor or tuple(1.0 for _ in scaling.long_factor)
        return cls(
            inv_freq_from_factors(spec, short),
            inv_freq_from_factors(spec, scaling.long_factor),
            scaling.attention_factor,
            scaling.original_length,
            n_hat=n_hat,
        )

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        use_long = long_tokens(position_ids, self.original_length)  # (B, T)
        if self.n_hat:
            use_long &= position_ids >= self.n_hat
        inv_freq = torch.where(
            use_long[..., None],  # (B, T, 1)
            self.long_inv_freq.to(x.device),
            self.short_inv_freq.to(x.device),
        )  # (B, T, pairs)
        freqs = position_ids[..., None].float() * inv_freq  # (B, T, pairs)
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, rotary_dim), HF's rotate_half layout
        cos = emb.cos() * self.attention_scaling
        sin = emb.sin() * self.attention_scaling
        return cos.to(x.dtype), sin.to(x.dtype)


def rotary_owner(model) -> nn.Module:
    """The submodule holding `rotary_emb` (the decoder of Llama, Qwen, Mistral, Phi-3 ...)."""
    decoder = getattr(model, "model", model)
    if not isinstance(getattr(decoder, "rotary_emb", None), nn.Module):
        raise RopebenchError(
            f"{type(model).__name__} has no shared rotary module at model.rotary_emb; mixed window "
            "training supports Llama-family decoders (Llama, Qwen2/3, Mistral, Phi-3)"
        )
    return decoder


def install_mixed_rotary(model, scaling: RopeScaling, n_hat: int = 0) -> MixedRotaryEmbedding:
    """Replace the model's rotary module with the mixed one (undo with `patch.apply_scaling`)."""
    from ropebench.model.patch import spec_of
    from ropebench.rope.layout import nested_types

    if nested_types(model.config):
        raise RopebenchError(
            f"{type(model).__name__} keeps one RoPE per layer type, which the mixed-window rotary "
            "module does not; train it with plain rows (--set params.mixed=false)"
        )
    owner = rotary_owner(model)
    device = next(model.parameters()).device
    module = MixedRotaryEmbedding.from_scaling(scaling, spec_of(model), n_hat=n_hat).to(device)
    owner.rotary_emb = module
    return module

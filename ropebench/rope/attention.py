"""Training-free attention methods as position maps: which positions a query and a key take.

Self-Extend, Dual Chunk Attention and ReRoPE keep the model's RoPE frequencies and change the
positions RoPE sees, differently for different (query, key) pairs. Each is one pure function here
that splits the causal (query, key) pairs into *views*: in a view, query i takes position
`query[i]`, key j takes position `key[j]`, and the view scores the pairs where `use[i, j]`. The
views of a method cover every causal pair exactly once; attention then takes each pair's score
from its view (`ropebench.model.attention`).

Positions are the tokens' true positions (B, T); a view's positions have the same shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ropebench.errors import RopebenchError


@dataclass(frozen=True)
class PositionView:
    query: torch.Tensor  # (B, Tq) positions the queries take in this view
    key: torch.Tensor  # (B, Tk) positions the keys take in this view
    use: torch.Tensor  # (B, Tq, Tk) bool: the pairs scored in this view


def _distance(q_pos: torch.Tensor, k_pos: torch.Tensor) -> torch.Tensor:
    """i - j for every (query, key) pair. (B, Tq), (B, Tk) -> (B, Tq, Tk)."""
    return q_pos[:, :, None] - k_pos[:, None, :]


def self_extend_views(
    q_pos: torch.Tensor, k_pos: torch.Tensor, group_size: int, window: int
) -> list[PositionView]:
    """Self-Extend (Jin et al. 2024): exact positions for keys fewer than `window` tokens back,
    floor-divided ("grouped") positions beyond, shifted so the two meet at the window edge:
    query i -> i // G + W - W // G, key j -> j // G (G = group_size, W = window)."""
    near = _distance(q_pos, k_pos) < window  # (B, Tq, Tk)
    grouped_q = torch.div(q_pos, group_size, rounding_mode="floor") + window - window // group_size
    grouped_k = torch.div(k_pos, group_size, rounding_mode="floor")
    return [PositionView(q_pos, k_pos, near), PositionView(grouped_q, grouped_k, ~near)]


def rerope_views(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int) -> list[PositionView]:
    """ReRoPE (Su 2023): exact relative positions below `window`, the relative position capped
    at `window` beyond (query at `window`, key at 0)."""
    near = _distance(q_pos, k_pos) < window  # (B, Tq, Tk)
    capped_q = torch.full_like(q_pos, window)
    return [PositionView(q_pos, k_pos, near), PositionView(capped_q, torch.zeros_like(k_pos), ~near)]


def dca_views(
    q_pos: torch.Tensor, k_pos: torch.Tensor, chunk_size: int, local_window: int
) -> list[PositionView]:
    """Dual Chunk Attention (An et al. 2024) with chunk size s and local window w.

    Keys take their position inside their chunk, j mod s. Queries take:
    - intra-chunk (key in the query's chunk): i mod s, so distances are exact;
    - successive-chunk (key in the previous chunk): min(s + i mod s, s + w), exact for the first
      w tokens of a chunk, then held at s + w;
    - inter-chunk (keys two or more chunks back): min(2s - 1, s + w) for every query.
    The largest relative position is s + w. Positions follow HKUNLP/ChunkLlama, whose
    `chunk_size` is s + w and whose `chunk_len` is s (the paper writes the inter-chunk query as
    c - 1 with c = s + w)."""
    s, w = chunk_size, local_window
    q_chunk = torch.div(q_pos, s, rounding_mode="floor")
    k_chunk = torch.div(k_pos, s, rounding_mode="floor")
    gap = q_chunk[:, :, None] - k_chunk[:, None, :]  # (B, Tq, Tk) chunks between query and key
    inner_q = q_pos - q_chunk * s  # i mod s
    inner_k = k_pos - k_chunk * s  # j mod s
    successive_q = torch.clamp(inner_q + s, max=s + w)
    inter_q = torch.full_like(q_pos, min(2 * s - 1, s + w))
    return [
        PositionView(inner_q, inner_k, gap == 0),
        PositionView(successive_q, inner_k, gap == 1),
        PositionView(inter_q, inner_k, gap >= 2),
    ]


def attention_views(
    settings: dict, q_pos: torch.Tensor, k_pos: torch.Tensor
) -> list[PositionView]:
    """The views of the attention method `settings["method"]` with its settings."""
    method = settings.get("method")
    if method == "self_extend":
        return self_extend_views(q_pos, k_pos, settings["group_size"], settings["window"])
    if method == "dca":
        return dca_views(q_pos, k_pos, settings["chunk_size"], settings["local_window"])
    if method == "rerope":
        return rerope_views(q_pos, k_pos, settings["window"])
    raise RopebenchError(f"unknown attention method {method!r}; use self_extend, dca or rerope")


# Where each method runs besides ropebench's hf backend: what a refusal points to.
RUNS_ELSEWHERE = {
    "self_extend": "llama.cpp runs Self-Extend as group attention (llama-cli --grp-attn-n G "
                   "--grp-attn-w W)",
    "dca": "vLLM ran it for Qwen2.5-1M checkpoints (dual_chunk_attention_config) until it was "
           "removed; HKUNLP/ChunkLlama patches transformers 4.37",
    "rerope": "bojone/rerope patches transformers' Llama attention",
}


def engine_refusal(settings: dict, engine: str) -> str:
    """One line: `engine` cannot run this attention method, and where it does run."""
    method = settings.get("method", "?")
    elsewhere = RUNS_ELSEWHERE.get(method, "its authors' code")
    return (
        f"{method} changes attention itself, which {engine} cannot run from a model config; "
        f"run it on ropebench's hf backend (eval/run without --backend vllm), or elsewhere: "
        f"{elsewhere}"
    )

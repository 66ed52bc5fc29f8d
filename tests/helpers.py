"""Micro models and tokenizers built locally for tests (nothing is downloaded)."""

from __future__ import annotations

import functools
from pathlib import Path

import torch


@functools.lru_cache(maxsize=1)
def _tokenizer_dir() -> Path:
    """The reference tokenizer recipe on a slice of the stdlib docs, trained once per session."""
    import pydoc_data.topics
    import tempfile

    from ropebench.reference.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(list(pydoc_data.topics.topics.values())[:20], vocab_size=384)
    out = Path(tempfile.mkdtemp(prefix="ropebench-tok-"))
    tokenizer.save_pretrained(out)
    return out


def tiny_tokenizer():
    """A fresh PreTrainedTokenizerFast with bos/eos/pad that adds BOS like Llama's tokenizer."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_tokenizer_dir())


def tiny_llama(
    *,
    vocab_size: int = 384,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int | None = None,
    window: int = 64,
    rope_theta: float = 10000.0,
    head_dim: int | None = None,
    seed: int = 0,
    model_type: str = "llama",
    partial_rotary_factor: float | None = None,
):
    """A randomly initialised causal LM (float32, eval mode) with a RoPE window of `window`."""
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    rope_parameters = {"rope_type": "default", "rope_theta": rope_theta}
    if partial_rotary_factor is not None:
        rope_parameters["partial_rotary_factor"] = partial_rotary_factor
    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        max_position_embeddings=window,
        rope_parameters=rope_parameters,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=True,
    )
    if head_dim is not None:
        kwargs["head_dim"] = head_dim
    config = AutoConfig.for_model(model_type, **kwargs)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    return model.float().eval()


def complete(model, tokenizer, texts, max_new_tokens, **options):
    """Greedy completions of `texts` through the HF backend, as the evaluation loop asks for them."""
    from ropebench.backends.hf import HFBackend
    from ropebench.tasks.prompting import encode

    prompts = [encode(tokenizer, text) for text in texts]
    return HFBackend(model, tokenizer).generate(prompts, max_new_tokens, **options)

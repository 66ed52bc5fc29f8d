"""Micro models and tokenizers built locally for tests (nothing is downloaded)."""

from __future__ import annotations

import functools
from pathlib import Path

import torch


@functools.lru_cache(maxsize=1)
def _tokenizer_files(vocab_size: int = 384) -> Path:
    """Train a byte-level BPE on a slice of the stdlib docs once per test session."""
    import tempfile

    import pydoc_data.topics
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    text = list(pydoc_data.topics.topics.values())[:20]
    tok = Tokenizer(models.BPE(unk_token=None))
    # Digits are split one by one so 7-digit values are 7 tokens, as in the reference tokenizer.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|pad|>", "<|bos|>", "<|eos|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(text, trainer=trainer)
    out = Path(tempfile.mkdtemp(prefix="ropebench-tok-"))
    tok.save(str(out / "tokenizer.json"))
    return out


def tiny_tokenizer():
    """A PreTrainedTokenizerFast with bos/eos/pad; adds BOS like Llama's tokenizer."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    path = _tokenizer_files()
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(path / "tokenizer.json"),
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
    )
    bos_id = tok.convert_tokens_to_ids("<|bos|>")
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<|bos|> $A", pair="<|bos|> $A $B", special_tokens=[("<|bos|>", bos_id)]
    )
    return tok


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

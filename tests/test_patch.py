"""Patching loaded models: rotary rebuild, float32 frequencies, and generation across the switch."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_llama

from ropebench.backends.hf_engine import generate_across_switch as generate
from ropebench.errors import RopebenchError
from ropebench.methods import get_extender
from ropebench.model.patch import apply_scaling, spec_of
from ropebench.rope.scaling import switch_length

MODEL_TYPES = ["llama", "qwen2", "qwen3", "mistral", "phi3"]
METHODS = ["none", "pi", "ntk", "dynamic-ntk", "yarn", "llama3", "longrope", "longrope2"]


def rebuilt_from_config(model):
    """A fresh model built by transformers from the patched config, with the same weights."""
    from transformers import AutoModelForCausalLM

    fresh = AutoModelForCausalLM.from_config(model.config, attn_implementation="sdpa")
    fresh.load_state_dict(model.state_dict())
    return fresh.float().eval()


# Every method on Llama; the methods that map differently per architecture on the others.
CASES = (
    [("llama", method) for method in METHODS]
    + [
        (model_type, method)
        for model_type in MODEL_TYPES[1:]
        for method in ("pi", "yarn", "longrope2")
    ]
    + [("phi3", "dynamic-ntk")]
)


@pytest.mark.parametrize("model_type, method", CASES)
def test_patched_model_equals_transformers_built_model(model_type, method):
    model = tiny_llama(model_type=model_type, window=32)
    scaling = get_extender(method).rescale(spec_of(model), 128)
    if model_type == "phi3" and method == "dynamic-ntk":
        with pytest.raises(RopebenchError, match="use ntk"):
            apply_scaling(model, scaling)
        return
    ids = torch.randint(3, 300, (2, 80))  # past the window: long factors, grown dynamic base
    with torch.no_grad():
        before = model(ids).logits
        apply_scaling(model, scaling)
        after = model(ids).logits
        reference = rebuilt_from_config(model)(ids).logits
    torch.testing.assert_close(after, reference, rtol=0, atol=1e-6)
    if method != "none":
        assert (after - before).abs().max() > 1e-4  # the patch really changed the model
    rotary = model.model.rotary_emb
    assert rotary.inv_freq.dtype == torch.float32
    assert spec_of(model) == spec_of(tiny_llama(model_type=model_type, window=32))


def test_phi3_expresses_static_methods_as_longrope_with_equal_factors():
    model = tiny_llama(model_type="phi3", window=32)
    scaling = get_extender("yarn").rescale(spec_of(model), 128)
    apply_scaling(model, scaling)
    params = model.config.rope_parameters
    assert params["rope_type"] == "longrope"
    assert params["short_factor"] == params["long_factor"] == list(scaling.long_factor)
    assert params["attention_factor"] == scaling.attention_factor
    assert model.config.original_max_position_embeddings == 32  # Phi-3's own default is 4096
    assert switch_length(model.config) is None


def test_partial_rotary_keeps_its_rotary_dim():
    model = tiny_llama(model_type="phi3", window=32, partial_rotary_factor=0.5)
    spec = spec_of(model)
    assert (spec.head_dim, spec.rotary_dim) == (16, 8)
    apply_scaling(model, get_extender("longrope2").rescale(spec, 128))
    assert model.model.rotary_emb.inv_freq.shape == (4,)
    with torch.no_grad():
        model(torch.randint(3, 300, (1, 40)))


def test_inv_freq_stays_float32_in_a_bf16_model():
    model = tiny_llama(window=32).to(torch.bfloat16)
    assert model.model.rotary_emb.inv_freq.dtype == torch.bfloat16  # the trap transformers leaves
    apply_scaling(model, get_extender("yarn").rescale(spec_of(model), 128))
    assert model.model.rotary_emb.inv_freq.dtype == torch.float32
    assert model.model.rotary_emb.original_inv_freq.dtype == torch.float32


def test_patching_twice_starts_from_the_pretrained_rope():
    once, twice = tiny_llama(window=32), tiny_llama(window=32)
    apply_scaling(twice, get_extender("pi").rescale(spec_of(twice), 256))
    apply_scaling(twice, get_extender("ntk").rescale(spec_of(twice), 128))
    apply_scaling(once, get_extender("ntk").rescale(spec_of(once), 128))
    torch.testing.assert_close(once.model.rotary_emb.inv_freq, twice.model.rotary_emb.inv_freq)
    assert twice.config.max_position_embeddings == 128


def test_scaling_for_another_model_is_rejected():
    scaling = get_extender("yarn").rescale(spec_of(tiny_llama(window=64)), 256)
    with pytest.raises(RopebenchError, match="64-token window.*this model has 32"):
        apply_scaling(tiny_llama(window=32), scaling)


def test_model_without_rope_is_rejected():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(RopebenchError, match="does not use RoPE"):
        spec_of(model)


# --- generation across the short/long switch --------------------------------------------------


def sharp_model(model_type="llama", window=32):
    """A random model with confident logits, so greedy choices are not float-noise ties."""
    model = tiny_llama(model_type=model_type, window=window, seed=1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)
    return model


def full_recompute(model, ids, mask, steps):
    """Greedy decoding that re-runs the whole sequence at every step (no KV cache)."""
    new = []
    with torch.no_grad():
        for _ in range(steps):
            position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(ids, attention_mask=mask, position_ids=position_ids).logits[:, -1]
            token = logits.argmax(-1, keepdim=True)
            new.append(token)
            ids = torch.cat([ids, token], dim=1)
            mask = torch.cat([mask, torch.ones_like(token)], dim=1)
    return torch.cat(new, dim=1)


@pytest.mark.parametrize("model_type", ["llama", "qwen2", "mistral", "phi3"])
def test_generation_re_prefills_at_the_switch(model_type):
    model = sharp_model(model_type)
    apply_scaling(model, get_extender("longrope2").rescale(spec_of(model), 128))
    assert switch_length(model.config) == 32
    ids = torch.randint(3, 300, (2, 26))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding: the second row is 22 tokens long
    expected = full_recompute(model, ids, mask, steps=16)  # crosses 32 after 7 new tokens
    got = generate(model, ids, mask, max_new_tokens=16, eos_token_id=None)
    assert torch.equal(got, expected)


def test_plain_generate_goes_wrong_at_the_switch():
    """Why the re-prefill exists: Llama's cache keeps keys rotated with the short factors."""
    model = sharp_model("llama")
    apply_scaling(model, get_extender("longrope2").rescale(spec_of(model), 128))
    ids = torch.randint(3, 300, (1, 26))
    out = model.generate(
        ids,
        max_new_tokens=16,
        do_sample=False,
        eos_token_id=None,
        output_logits=True,
        return_dict_in_generate=True,
    )
    tokens = out.sequences[:, 26:]
    with torch.no_grad():
        # The step whose input first exceeds 32 tokens (the 8th new token), recomputed in full.
        seq = torch.cat([ids, tokens[:, :7]], dim=1)
        exact = model(seq).logits[:, -1]
    assert (out.logits[7] - exact).abs().max() > 1e-2


def test_generation_without_switch_and_eos_padding():
    model = sharp_model("llama")
    ids = torch.randint(3, 300, (1, 10))
    apply_scaling(model, get_extender("yarn").rescale(spec_of(model), 128))
    expected = full_recompute(model, ids, torch.ones_like(ids), steps=30)
    assert torch.equal(generate(model, ids, max_new_tokens=30, eos_token_id=None), expected)

    # With a switching scaling, a row that ends before the switch stays ended afterwards.
    apply_scaling(model, get_extender("longrope2").rescale(spec_of(model), 128))
    eos = int(full_recompute(model, ids, torch.ones_like(ids), steps=3)[0, 2])
    got = generate(model, ids, max_new_tokens=30, eos_token_id=eos, pad_token_id=0)
    assert got.shape[1] <= 30 and got[0, 2] == eos
    assert (got[0, 3:] == 0).all()

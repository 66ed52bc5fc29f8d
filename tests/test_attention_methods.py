"""Self-Extend, Dual Chunk Attention and ReRoPE: exact reductions, the authors' golden logits, an
independent per-pair reference, the KV-cache path, composition with YaRN, and refusals."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_llama, tiny_tokenizer

from ropebench.cli.main import main
from ropebench.methods import get_extender
from ropebench.model.attention import install_attention, view_attention_forward
from ropebench.model.patch import apply_scaling
from ropebench.rope.spec import RopeSpec

LENGTH = 96  # tokens of the golden input


def golden_llama():
    """The tiny Llama and input the golden logits were computed on.

    Every weight comes from one seeded generator in sorted name order (not from transformers'
    initialisation), so the same recipe gave the same model under the authors' transformers
    (4.37.2 / 4.38.2) and gives it here."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                         max_position_embeddings=64, rope_theta=10000.0, rms_norm_eps=1e-6,
                         tie_word_embeddings=False, attn_implementation="sdpa")
    model = LlamaForCausalLM(config).eval()
    gen = torch.Generator().manual_seed(23)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1.0 + 0.1 * noise if name.endswith("norm.weight") else 0.3 * noise)
    ids = torch.randint(0, 97, (1, LENGTH), generator=gen)  # (1, 96)
    return model, ids


GOLDEN_POSITIONS = (40, 63, 80, 95)  # logits of vocabulary ids 0..5 at these positions
# datamllab/LongLM @ cdbbb061dc76438c46d7e1ddc500f8e4bf255574, self_extend_patch/Llama.py
# (`self_extend_forward`, group_size_1=4, group_size_2=16) on transformers 4.38.2, eager attention,
# max_position_embeddings 4096; a full forward (its token-by-token decode agrees to 1.1e-5).
GOLDEN_SELF_EXTEND = [
    [0.237886, -0.92556, -1.390735, 0.328872, 3.471241, 0.270608],
    [0.269489, 0.759626, -0.742002, -0.311819, -2.187544, -0.725129],
    [1.244347, -2.355398, -1.491781, -1.574992, 2.296516, 2.826584],
    [1.845709, 1.627904, -0.23841, -3.584002, 0.447349, -1.935003],
]
# HKUNLP/ChunkLlama @ 2add4d7c99d24dcc1ab03414cc602abb2e28cf2c, chunkllama_attn_replace.py on
# transformers 4.37.2, its globals chunk_size=32 and local_window=8 (so chunk_len 24: our
# chunk_size 24, local_window 8), max_position_embeddings 4096 (no length temperature); decoded
# token by token through its plain-torch cache branch (its flash-attn prefill merges in bf16; with
# that merge in float32 the two agree to 1.0e-5).
GOLDEN_DCA = [
    [1.25564, 0.503361, -0.467847, -0.920889, 2.639277, 1.094662],
    [0.378395, -1.43063, 0.344336, 0.311874, -2.59977, 3.135776],
    [0.627155, -0.68089, 0.775408, -4.669474, -0.287181, 1.24224],
    [0.203248, 2.395699, 0.61526, -0.951905, 0.00449, -1.006366],
]
SETTINGS = {
    "self_extend": {"method": "self_extend", "group_size": 4, "window": 16},
    "dca": {"method": "dca", "chunk_size": 24, "local_window": 8},
    "rerope": {"method": "rerope", "window": 16},
}
# The same methods with a window / chunk covering the whole input: exactly the plain model.
COVERING = {
    "self_extend": {"method": "self_extend", "group_size": 4, "window": LENGTH},
    "dca": {"method": "dca", "chunk_size": LENGTH, "local_window": 8},
    "rerope": {"method": "rerope", "window": LENGTH},
}


@pytest.fixture(scope="module")
def golden():
    model, ids = golden_llama()
    with torch.no_grad():
        vanilla = model(ids).logits[0]  # (T, V)
    return model, ids, vanilla


def _logits(model, ids, settings) -> torch.Tensor:
    install_attention(model, settings)
    try:
        with torch.no_grad():
            return model(ids).logits[0]  # (T, V)
    finally:
        install_attention(model, None)


@pytest.mark.parametrize("method", sorted(COVERING))
def test_a_covering_window_is_exactly_the_plain_model(golden, method):
    model, ids, vanilla = golden
    torch.testing.assert_close(_logits(model, ids, COVERING[method]), vanilla, atol=1e-5, rtol=0)
    assert model.config._attn_implementation == "sdpa"  # uninstalled again


@pytest.mark.parametrize("method", sorted(SETTINGS))
def test_a_short_window_changes_the_logits(golden, method):
    model, ids, vanilla = golden
    out = _logits(model, ids, SETTINGS[method])
    # Positions inside the first window (and chunk) still attend exactly as the plain model.
    torch.testing.assert_close(out[:16], vanilla[:16], atol=1e-5, rtol=0)
    assert (out[40:] - vanilla[40:]).abs().max() > 0.5


@pytest.mark.parametrize(("method", "numbers"), [("self_extend", GOLDEN_SELF_EXTEND),
                                                 ("dca", GOLDEN_DCA)])
def test_matches_the_authors_reference_implementation(golden, method, numbers):
    model, ids, vanilla = golden
    out = _logits(model, ids, SETTINGS[method])[list(GOLDEN_POSITIONS), :6]
    expected = torch.tensor(numbers)
    torch.testing.assert_close(out, expected, atol=3e-5, rtol=0)
    assert (vanilla[list(GOLDEN_POSITIONS), :6] - expected).abs().max() > 0.5  # a real difference


@pytest.mark.parametrize("method", sorted(SETTINGS))
def test_query_blocks_give_the_same_logits(golden, method, monkeypatch):
    model, ids, _ = golden
    whole = _logits(model, ids, SETTINGS[method])  # one block of 512 queries
    monkeypatch.setattr("ropebench.model.attention.QUERY_BLOCK", 7)
    torch.testing.assert_close(_logits(model, ids, SETTINGS[method]), whole, atol=1e-6, rtol=0)


# -- an independent per-pair reference, straight from the papers' definitions -------------------


def _paper_positions(method: str, i: int, j: int, cfg: dict) -> tuple[int, int]:
    """(query position, key position) the method gives the pair (i, j), j <= i."""
    if method == "self_extend":
        g, w = cfg["group_size"], cfg["window"]
        return (i, j) if i - j < w else (i // g + w - w // g, j // g)
    if method == "rerope":
        return (i, j) if i - j < cfg["window"] else (cfg["window"], 0)
    s, w = cfg["chunk_size"], cfg["local_window"]
    if i // s == j // s:
        return i % s, j % s
    if i // s == j // s + 1:
        return min(s + i % s, s + w), j % s
    return min(2 * s - 1, s + w), j % s


def _slow_attention(rotary, q, k, v, method, cfg, scaling):
    """Loop over queries and keys, rotating the raw vectors at the pair's positions."""
    def rotated(x, pos):  # x (D,) raw -> rotated at `pos` with the model's rotary module
        cos, sin = rotary(x[None, None], torch.tensor([[pos]]))  # (1, 1, D)
        half = x.shape[-1] // 2
        turned = torch.cat((-x[half:], x[:half]))
        return x * cos[0, 0] + turned * sin[0, 0]

    heads, length, _ = q.shape
    out = torch.zeros_like(q)
    for h in range(heads):
        for i in range(length):
            scores = []
            for j in range(i + 1):
                pq, pk = _paper_positions(method, i, j, cfg)
                scores.append(rotated(q[h, i], pq) @ rotated(k[h, j], pk) * scaling)
            weights = torch.softmax(torch.stack(scores), dim=0)
            out[h, i] = weights @ v[h, : i + 1]
    return out


@pytest.mark.parametrize("rope", ["default", "yarn"])
@pytest.mark.parametrize("method", sorted(SETTINGS))
def test_views_equal_a_per_pair_reference(method, rope):
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding

    params = {"rope_type": "default", "rope_theta": 10000.0}
    if rope == "yarn":  # composition: the views re-rotate with YaRN's frequencies and factor
        params = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                  "original_max_position_embeddings": 16}
    config = LlamaConfig(hidden_size=16, num_attention_heads=2, num_key_value_heads=2, head_dim=8,
                         max_position_embeddings=64, rope_parameters=params)
    rotary = LlamaRotaryEmbedding(config)
    cfg = {"self_extend": {"method": "self_extend", "group_size": 3, "window": 6},
           "dca": {"method": "dca", "chunk_size": 7, "local_window": 3},
           "rerope": {"method": "rerope", "window": 5}}[method]
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 30, 8, generator=gen) for _ in range(3))  # (H, T, D) raw
    positions = torch.arange(30)[None]  # (1, T)
    cos, sin = rotary(q[None], positions)  # (1, T, D)

    def at_true(x):  # (H, T, D) -> (1, H, T, D) rotated at the true positions
        half = x.shape[-1] // 2
        return (x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin)[None]

    module = LlamaAttention(config, layer_idx=0).eval()
    config.ropebench_attention = cfg
    fast, _ = view_attention_forward(module, at_true(q), at_true(k), v[None], None,
                                     scaling=8 ** -0.5, position_ids=positions)  # (1, T, H, D)
    slow = _slow_attention(rotary, q, k, v, method, cfg, 8 ** -0.5)  # (H, T, D)
    torch.testing.assert_close(fast[0].transpose(0, 1), slow, atol=2e-5, rtol=0)


# -- the KV cache path and generation through the HF backend ------------------------------------


@pytest.mark.parametrize("method", sorted(SETTINGS))
def test_cached_decode_steps_equal_a_full_recompute(golden, method):
    model, ids, _ = golden
    install_attention(model, SETTINGS[method])
    try:
        with torch.no_grad():
            full = model(ids).logits[0]  # (T, V)
            out = model(ids[:, :50], use_cache=True)
            cache, steps = out.cache, []
            for t in range(50, LENGTH):
                out = model(ids[:, t : t + 1], cache=cache, use_cache=True)
                cache = out.cache
                steps.append(out.logits[0, -1])
    finally:
        install_attention(model, None)
    torch.testing.assert_close(torch.stack(steps), full[50:], atol=3e-5, rtol=0)


@pytest.mark.parametrize("engine", ["fast", "hf"])
@pytest.mark.parametrize("method", sorted(SETTINGS))
def test_generation_through_the_hf_backend_matches_greedy_recompute(method, engine, one_thread):
    from ropebench.backends.hf import HFBackend

    model, tokenizer = tiny_llama(window=32, seed=3), tiny_tokenizer()
    settings = {"self_extend": {"group_size": 4, "window": 8}, "dca": {"chunk_size": 12,
                "local_window": 4}, "rerope": {"window": 8}}[method]
    backend = HFBackend(model, tokenizer)
    backend.apply_scaling(get_extender(method, settings).rescale(RopeSpec.from_config(model.config), 128))
    assert backend.identity["attention"]["method"] == method
    gen = torch.Generator().manual_seed(5)
    prompts = [torch.randint(3, 384, (n,), generator=gen).tolist() for n in (70, 45)]
    done = backend.generate(prompts, 12, engine=engine)  # left-padded batch, cached decode
    for prompt, completion in zip(prompts, done, strict=True):
        tokens = list(prompt)
        with torch.no_grad():
            for _ in range(12):  # greedy by full recompute, no cache
                tokens.append(int(model(torch.tensor([tokens])).logits[0, -1].argmax()))
        assert completion.text == tokenizer.decode(tokens[len(prompt):], skip_special_tokens=True)


# -- through the extenders: composition, defaults, identity ------------------------------------


def test_dca_composes_with_yarn_as_qwen25_1m():
    spec = RopeSpec.from_config({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
                                 "max_position_embeddings": 64,
                                 "rope_parameters": {"rope_type": "default", "rope_theta": 1e4}})
    scaling = get_extender("dca", {"frequency": "yarn", "chunk_size": 40}).rescale(spec, 256)
    yarn = get_extender("yarn").rescale(spec, 256)
    assert scaling.rope_parameters == yarn.rope_parameters
    assert scaling.attention_factor == yarn.attention_factor
    assert scaling.extra["attention"] == {"method": "dca", "chunk_size": 40, "local_window": 8}
    assert scaling.extra["frequency"] == "yarn"


def test_self_extend_default_group_keeps_positions_inside_the_window():
    spec = RopeSpec.from_config({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
                                 "max_position_embeddings": 512,
                                 "rope_parameters": {"rope_type": "default", "rope_theta": 1e4}})
    settings = get_extender("self_extend").rescale(spec, 4096).extra["attention"]
    g, w = settings["group_size"], settings["window"]
    assert w == 128 and w % g == 0
    assert 4095 // g + w - w // g < 512
    assert 4095 // (g // 2) + w - w // (g // 2) >= 512  # the smallest such group


def test_patching_again_without_an_attention_method_restores_the_model(golden):
    model, ids, vanilla = golden
    spec = RopeSpec.from_config(model.config)
    apply_scaling(model, get_extender("rerope", {"window": 8}).rescale(spec, 128))
    assert model.config._attn_implementation == "ropebench"
    apply_scaling(model, get_extender("none").rescale(spec, 128))
    assert model.config._attn_implementation == "sdpa"
    assert not hasattr(model.config, "ropebench_attention")
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits[0], vanilla, atol=0, rtol=0)


# -- refusals and bad settings: one line, exit 2, before any weights load -----------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    tiny_llama(window=32).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


BAD = {
    "group size 0": (["eval", "{m}", "--method", "self_extend", "--set", "params.group_size=0"],
                     "group_size"),
    "window not a multiple": (["eval", "{m}", "--method", "self_extend", "--set",
                               "params.group_size=3", "--set", "params.window=8"], "multiple"),
    "local window above chunk": (["eval", "{m}", "--method", "dca", "--set", "params.chunk_size=8",
                                  "--set", "params.local_window=9"], "larger than chunk_size"),
    "negative window": (["eval", "{m}", "--method", "rerope", "--set", "params.window=-4"],
                        "window"),
    "switching frequency": (["eval", "{m}", "--method", "dca", "--set",
                             "params.frequency=longrope"], "frequency"),
    "extend": (["extend", "{m}", "--method", "self_extend", "--out", "{o}"], "llama.cpp"),
    "vllm": (["eval", "{m}", "--method", "dca", "--backend", "vllm"], "hf backend"),
    "train": (["train", "{m}", "--method", "rerope", "--out", "{o}"], "training-free"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_settings_and_engines_exit_2_in_one_line(case, model_dir, tmp_path, capsys,
                                                     monkeypatch):
    def no_weights(*args, **kwargs):
        raise AssertionError("weights loaded before the input was checked")

    monkeypatch.setattr("ropebench.model.load.load_model", no_weights)
    argv, phrase = BAD[case]
    argv = [a.format(m=model_dir, o=tmp_path / "out") for a in argv]
    if argv[0] in ("eval", "extend", "train"):
        argv += ["--target-length", "128"]
    if argv[0] == "eval":
        argv += ["--tasks", "ppl", "--lengths", "64", "--out", str(tmp_path / "out")]
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and phrase.lower() in lines[0].lower(), err
    assert not (tmp_path / "out").exists() or argv[0] == "eval"


def test_list_shows_the_engines_of_each_method(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("self_extend", "dca", "rerope"):
        line = next(x for x in out.splitlines() if x.strip().startswith(name + " "))
        assert "[hf]" in line
    assert "--grp-attn-n" in out
    assert "[hf,vllm,export]" in next(x for x in out.splitlines() if x.strip().startswith("yarn "))

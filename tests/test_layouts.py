"""Model layouts: RoPE per layer type (Gemma-3) and NoPE layers (SmolLM3).

Tiny models built from transformers' own config classes go through rope-info, extend, eval and
export; only the long-range layers' RoPE changes, and the export loads in vanilla transformers
with the patched model's logits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import tiny_tokenizer

from ropebench.cli.main import main
from ropebench.methods import get_extender
from ropebench.model.patch import apply_scaling, spec_of
from ropebench.rope.layout import layer_groups
from ropebench.rope.math import inv_freq_from_factors

WINDOW, TARGET, SLIDING = 32, 128, 16
LOCAL_BASE, GLOBAL_BASE = 10000.0, 100000.0
COMMON = dict(vocab_size=384, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=WINDOW,
              bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=True)


def gemma3_model():
    """Gemma-3's layout: sliding layers with a local base, full layers with the global base."""
    from transformers import AutoModelForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        **COMMON, head_dim=16, query_pre_attn_scalar=16, sliding_window=SLIDING,
        layer_types=["sliding_attention", "full_attention"] * 2,
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": LOCAL_BASE},
                         "full_attention": {"rope_type": "default", "rope_theta": GLOBAL_BASE}},
    )
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").float().eval()


def smollm3_model():
    """SmolLM3's layout: one RoPE, every fourth layer without position encoding."""
    from transformers import AutoModelForCausalLM, SmolLM3Config

    torch.manual_seed(0)
    config = SmolLM3Config(**COMMON, rope_parameters={"rope_type": "default",
                                                      "rope_theta": LOCAL_BASE})
    assert config.no_rope_layers == [1, 1, 1, 0]
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa").float().eval()


BUILDERS = {"gemma3": gemma3_model, "smollm3": smollm3_model}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def model_dir(request, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp(request.param)
    BUILDERS[request.param]().save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


def cli(capsys, *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _rows(capsys, model_dir: Path, *extra: str) -> dict[str, dict]:
    info = json.loads(cli(capsys, "rope-info", str(model_dir), "--json", *extra))
    return {(row["type"], row["base"] is not None): row for row in info["layers"]}


def test_rope_info_shows_each_layer_type(model_dir, capsys):
    rows = _rows(capsys, model_dir)
    if model_dir.name.startswith("gemma3"):
        local, full = rows[("sliding_attention", True)], rows[("full_attention", True)]
        assert (local["layers"], local["base"], local["change"]) == ([0, 2], LOCAL_BASE,
                                                                   f"kept (attends {SLIDING} tokens)")
        assert (full["layers"], full["base"], full["change"]) == ([1, 3], GLOBAL_BASE, "extended")
        # Each type's d_tcd from its own base and the distance it sees (local: its window).
        assert full["d_tcd"] != local["d_tcd"] and full["pairs"] == local["pairs"] == 8
    else:
        rope, nope = rows[("full_attention", True)], rows[("full_attention", False)]
        assert (rope["layers"], rope["base"], rope["change"]) == ([0, 1, 2], LOCAL_BASE, "extended")
        assert (nope["layers"], nope["pairs"], nope["d_tcd"]) == ([3], 0, None)
    text = cli(capsys, "rope-info", str(model_dir), "--method", "yarn",
               "--target-length", str(TARGET))
    assert "change by yarn" in text and "extended" in text


def test_rope_info_reads_gemma3_configs_of_the_hub_format(tmp_path, capsys):
    """Gemma-3 files on the hub give the local base and the pattern, not layer types."""
    config = {"model_type": "gemma3_text", **COMMON, "head_dim": 16, "num_hidden_layers": 6,
              "rope_theta": GLOBAL_BASE, "rope_local_base_freq": LOCAL_BASE,
              "sliding_window": SLIDING, "sliding_window_pattern": 6, "rope_scaling": None}
    (tmp_path / "config.json").write_text(json.dumps(config))
    rows = _rows(capsys, tmp_path)
    assert rows[("sliding_attention", True)]["layers"] == [0, 1, 2, 3, 4]
    assert rows[("sliding_attention", True)]["base"] == LOCAL_BASE
    assert rows[("full_attention", True)] | {"d_tcd": None} == {
        "type": "full_attention", "layers": [5], "base": GLOBAL_BASE, "pairs": 8, "d_tcd": None,
        "change": "extended"}


def _rotary_state(model) -> dict[str, tuple[torch.Tensor, float]]:
    """inv_freq and attention scaling per layer type of the model's rotary module."""
    rotary = model.model.rotary_emb
    if hasattr(rotary, "inv_freq"):
        return {"all": (rotary.inv_freq.clone(), rotary.attention_scaling)}
    return {name: (getattr(rotary, f"{name}_inv_freq").clone(),
                   getattr(rotary, f"{name}_attention_scaling")) for name in rotary.layer_types}


@pytest.mark.parametrize("method", ["pi", "yarn", "ntk", "longrope2"])
def test_extend_changes_only_the_long_range_layers(model_dir, method, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / method
    cli(capsys, "extend", str(model_dir), "--method", method, "--target-length", str(TARGET),
        "--out", str(out))
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    before = _rotary_state(base)
    spec = spec_of(base)
    scaling = get_extender(method).rescale(spec, TARGET)
    patched = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    apply_scaling(patched, scaling)
    exported = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()  # vanilla

    # At rest a switching (longrope) module holds its short factors; past the window, the long.
    expected = inv_freq_from_factors(spec, scaling.short_factor or scaling.long_factor)
    groups = {g.name: g for g in layer_groups(exported.config, spec)}
    for name, (inv_freq, attention) in _rotary_state(exported).items():
        if groups.get(name, groups.get("full_attention")).extended or name == "all":
            torch.testing.assert_close(inv_freq, expected, rtol=1e-6, atol=0)
            assert attention == pytest.approx(scaling.attention_factor)
        else:  # Gemma-3's sliding layers: exactly as pretrained
            assert torch.equal(inv_freq, before[name][0]) and attention == before[name][1]
    if "sliding_attention" in before:
        saved = json.loads((out / "config.json").read_text())["rope_parameters"]
        assert saved["sliding_attention"] == {"rope_type": "default", "rope_theta": LOCAL_BASE}
    else:
        assert exported.config.no_rope_layers == [1, 1, 1, 0]
        assert [layer.self_attn.use_rope for layer in exported.model.layers] == [1, 1, 1, 0]

    ids = torch.randint(3, 384, (1, 100), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = patched(ids).logits, exported(ids).logits
        unscaled = base(ids).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert (got - unscaled).abs().max() > 1e-3  # the scaling reached the logits


def test_eval_runs_the_extended_layouts(model_dir, tmp_path, capsys):
    """A quick task on the model patched in memory equals the same task on its export."""
    out = tmp_path / "yarn"
    cli(capsys, "extend", str(model_dir), "--method", "yarn", "--target-length", str(TARGET),
        "--out", str(out))
    task = ["--tasks", "ppl", "--lengths", f"{WINDOW},{TARGET}", "--samples", "1"]
    cli(capsys, "eval", str(model_dir), "--method", "yarn", "--target-length", str(TARGET),
        *task, "--out", str(tmp_path / "patched"))
    cli(capsys, "eval", str(out), *task, "--out", str(tmp_path / "exported"))

    def ppl(folder: Path) -> dict[int, float]:
        rows = [json.loads(line) for line in (folder / "rows.jsonl").read_text().splitlines()]
        return {row["length"]: row["score"] for row in rows}

    patched, exported = ppl(tmp_path / "patched"), ppl(tmp_path / "exported")
    assert sorted(patched) == [WINDOW, TARGET]
    assert all(value > 0 for value in patched.values())
    assert exported == pytest.approx(patched, rel=1e-5)

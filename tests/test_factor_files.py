"""Released factor files (HF longrope configs, LongRoPE CSVs) read, decomposed and checked.

Golden data: the long factors of nnscaler's LongRoPE2 Llama-3-8B config (8K -> 128K, s = 16),
microsoft/nnscaler, examples/longrope2/llama3_8b_longrope2_config.json at commit
1585c15d4ca99e23a410c90f9bad2664125524d4 (the same list is microsoft/LongRoPE's
examples/longrope2/fake-llama3-ntk-cd-init-128k.csv at commit
5e669a53ca25e77173e0d5956e65976cd2bb5125, one factor per line). Only the numbers are kept here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ropebench.cli.main import main
from ropebench.errors import RopebenchError
from ropebench.methods import load_scaling
from ropebench.rope.decompose import decompose
from ropebench.rope.math import longrope2_factors
from ropebench.rope.spec import RopeSpec, spec_from_config_dict

NNSCALER_LLAMA3_LONG = [
    1, 1.097906416, 1.205398499, 1.323414747, 1.452985542, 1.595242149, 1.751426591, 1.922902493,
    2.111166985, 2.317863779, 2.544797515, 2.79394952, 3.067495105, 3.367822558, 3.697553996,
    4.059568257, 4.457026037, 4.893397485, 5.372492496, 5.898493984, 6.475994392, 7.110035795,
    7.806153921, 8.570426477, 9.40952622, 10.33077921, 11.34222878, 12.45270576, 13.67190555,
    15.01047283, 16.48009443, 18.09360142, 19.8650811, 21.81, 21.87, 21.88, 22.23, 22.28, 22.53,
    22.65, 22.73, 22.89, 22.92, 23.18, 23.23, 23.36, 23.42, 23.47, 23.51, 23.52, 23.75, 23.82,
    23.89, 24.06, 24.13, 24.14, 24.3, 24.53, 24.67, 24.75, 24.97, 25.49, 26.01, 26.05,
]


def llama3_config() -> dict:
    """The config's RoPE-relevant fields as nnscaler writes them (legacy `rope_scaling` with
    `type`, rope_theta and the original window at the top level)."""
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
        "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
        "num_hidden_layers": 32, "vocab_size": 128256, "rope_theta": 500000.0,
        "max_position_embeddings": 131072, "original_max_position_embeddings": 8192,
        "rope_scaling": {"type": "longrope", "long_factor": NNSCALER_LLAMA3_LONG,
                         "short_factor": [1.0] * 64},
    }


TINY_CONFIG = {  # 8 rotary pairs, window 64: a config without weights, so nothing can load them
    "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 32,
    "num_attention_heads": 2, "head_dim": 16, "num_hidden_layers": 1, "intermediate_size": 64,
    "vocab_size": 128, "max_position_embeddings": 64, "rope_theta": 10000.0,
}
TINY = RopeSpec(base=10000.0, head_dim=16, rotary_dim=16, window=64)


def write(path: Path, content) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_refusal(capsys, *argv) -> str:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("ropebench "), err
    assert "Traceback" not in err
    return err


# --- golden: nnscaler's Llama-3-8B LongRoPE2 config --------------------------------------------------


def test_nnscaler_llama3_factors_decompose_at_pair_33():
    spec = spec_from_config_dict(llama3_config())
    assert (spec.n_pairs, spec.window, spec.base) == (64, 8192, 500000.0)
    parts = decompose(spec, NNSCALER_LLAMA3_LONG, scale=16)
    assert parts.critical_index == 33
    assert parts.anchor == pytest.approx(21.81)
    assert parts.residual < 1e-6
    assert parts.anchor_over_scale == pytest.approx(21.81 / 16)
    assert (parts.upper_min, parts.upper_max) == (21.81, 26.05)
    assert (parts.d_tcd, parts.d10_tcd, parts.offset) == (35, 24, -2)  # 2 below the theory
    rebuilt = longrope2_factors(spec, 33, NNSCALER_LLAMA3_LONG[33:])
    assert len(rebuilt) == 64
    assert max(abs(a - b) for a, b in zip(rebuilt, NNSCALER_LLAMA3_LONG, strict=True)) < 1e-6


def test_nnscaler_config_loads_as_longrope2(tmp_path):
    config = write(tmp_path / "config.json", llama3_config())
    spec = spec_from_config_dict(llama3_config())
    scaling = load_scaling(config, spec)
    assert scaling.method == "longrope2" and scaling.critical_index == 33
    assert scaling.target_length == 131072 and scaling.provenance == "file"
    assert scaling.long_factor == tuple(float(f) for f in NNSCALER_LLAMA3_LONG)
    assert scaling.short_factor == (1.0,) * 64
    assert scaling.attention_factor == pytest.approx(1.143544, abs=1e-6)  # sqrt(1 + ln 16 / ln 8192)
    # The same file read for LongRoPE (v1) keeps its factors and drops the critical pair.
    assert load_scaling(config, spec, method="longrope").critical_index is None


def test_longrope_csv_layouts(tmp_path):
    spec = spec_from_config_dict(llama3_config())
    column = write(tmp_path / "column.csv", "\n".join(map(str, NNSCALER_LLAMA3_LONG)))
    per_layer = write(tmp_path / "layers.csv", "\n".join([",".join(map(str, NNSCALER_LLAMA3_LONG))] * 4))
    for path in (column, per_layer):
        scaling = load_scaling(path, spec, 131072)
        assert scaling.long_factor == tuple(float(f) for f in NNSCALER_LLAMA3_LONG)
        assert scaling.critical_index == 33
    with pytest.raises(RopebenchError, match="pass --target-length"):
        load_scaling(column, spec)
    differ = write(tmp_path / "differ.csv", "1,2\n1,3\n")
    with pytest.raises(RopebenchError, match="rows that differ"):
        load_scaling(differ, spec, 131072)


def test_rope_info_prints_the_decomposition(capsys, tmp_path):
    model = tmp_path / "llama3-longrope2"
    model.mkdir()
    write(model / "config.json", llama3_config())
    code, out, err = run_cli(capsys, "rope-info", model)
    assert code == 0, err
    assert "rope_type longrope, rope_theta 500000" in out and "None" not in out
    assert "c = 33" in out and "f_c = 21.81" in out
    assert "d_tcd = 35" in out and "d10_tcd = 24" in out
    assert "attention factor  1.143544" in out
    assert "short factors     all 1" in out
    code, out, _ = run_cli(capsys, "rope-info", model, "--json")
    parts = json.loads(out)["longrope"]["decomposition"]
    assert parts["critical_index"] == 33 and parts["anchor"] == 21.81


def test_extend_refuses_a_config_for_another_pair_count(capsys, tmp_path):
    config = write(tmp_path / "config.json", llama3_config())
    err = one_line_refusal(capsys, "extend", "reference", "--method", "longrope2",
                           "--factors", config, "--out", tmp_path / "out")
    assert "64 entries" in err and "32 rotary pairs" in err
    assert not (tmp_path / "out").exists()


# --- bad factor files: one line, exit 2, before any weights load ------------------------------------

GOOD = [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]


def factor_file(**fields) -> dict:
    return {"long_factor": GOOD, "target_length": 128, **fields}


BAD_FILES = {
    "too short": (factor_file(long_factor=GOOD[:7]), "has 7 entries but this model has 8"),
    "too long": (factor_file(long_factor=GOOD + [4.0]), "has 9 entries"),
    "nan": ('{"long_factor": [1, NaN, 2, 2, 2, 2, 2, 2], "target_length": 128}', "entry 1 is nan"),
    "infinity": ('{"long_factor": [1, 2, 2, 2, 2, 2, 2, Infinity], "target_length": 128}',
                 "entry 7 is inf"),
    "1e308": (factor_file(long_factor=[1, 2, 2, 2, 2, 2, 2, 1e308]), "above 1e+06"),
    "zero": (factor_file(long_factor=[0, 2, 2, 2, 2, 2, 2, 2]), "entry 0 is 0"),
    "boolean factor": (factor_file(long_factor=[True] * 8), "numbers only"),
    "text factor": (factor_file(long_factor=["2"] * 8), "numbers only"),
    "factors not a list": (factor_file(long_factor=2.0), "must be a list of 8 numbers"),
    "boolean short": (factor_file(short_factor=[1, 1, 1, 1, 1, 1, 1, False]), "short_factor"),
    "descending upper": (factor_file(long_factor=[1, 1.5, 2, 4, 3, 5, 5, 5], critical_index=3),
                         "non-decreasing from pair 3"),
    "descending longrope": (factor_file(long_factor=[1, 2, 3, 4, 5, 6, 8, 7], method="longrope"),
                            "non-decreasing from pair 0"),
    "fractional target": (factor_file(target_length=128.5), "target_length is 128.5"),
    "boolean target": (factor_file(target_length=True), "target_length is True"),
    "text target": (factor_file(target_length="128"), "target_length is '128'"),
    "huge target": (factor_file(target_length=10**30), "whole number from 1"),
    "fractional window": (factor_file(original_length=64.5), "original window is 64.5"),
    "other window": (factor_file(original_length=32), "window of 32 tokens"),
    "bogus method": (factor_file(method="rope-magic"), "names method 'rope-magic'"),
    "method not text": (factor_file(method=["longrope2"]), "names method ['longrope2']"),
    "critical index too big": (factor_file(critical_index=8), "critical_index is 8"),
    "critical index negative": (factor_file(critical_index=-1), "critical_index is -1"),
    "critical index fractional": (factor_file(critical_index=2.5), "critical_index is 2.5"),
    "critical index boolean": (factor_file(critical_index=True), "critical_index is True"),
    "critical index for longrope": (factor_file(method="longrope", critical_index=3),
                                    "critical_index belongs to longrope2"),
    "list named yarn": (factor_file(method="yarn"), "only longrope or longrope2 use, not yarn"),
    "attention factor huge": (factor_file(attention_factor=1e308), "attention_factor=1e+308"),
    "attention factor boolean": (factor_file(attention_factor=True), "attention_factor=True"),
    "attention factor negative": (factor_file(attention_factor=-1.0), "attention_factor=-1.0"),
    "config of type yarn": ({"max_position_embeddings": 128, "rope_parameters": {
        "rope_type": "yarn", "factor": 2.0, "rope_theta": 10000.0}}, "of type 'yarn'"),
    "config for another base": ({"max_position_embeddings": 128, "rope_theta": 500000.0,
                                 "rope_scaling": {"type": "longrope", "long_factor": GOOD,
                                                  "original_max_position_embeddings": 64}},
                                "rope_theta 500000.0"),
    "empty csv": ("\n\n", "is empty"),
    "csv with text": ("1,2,three", "holds numbers only"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_factor_files_are_refused(tmp_path, case):
    content, message = BAD_FILES[case]
    path = write(tmp_path / "factors.json", content)
    with pytest.raises(RopebenchError, match=None) as caught:
        load_scaling(path, TINY)
    assert message in str(caught.value), str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_factor_files_end_the_cli_in_one_line_before_weights(capsys, tmp_path, monkeypatch):
    import ropebench.model.load as load

    def no_weights(*args, **kwargs):
        raise AssertionError("weights loaded before the factors file was checked")

    monkeypatch.setattr(load, "load_model", no_weights)
    model = tmp_path / "tiny"
    model.mkdir()
    write(model / "config.json", TINY_CONFIG)
    for case in ("too short", "nan", "1e308", "boolean factor", "descending upper",
                 "fractional target", "bogus method", "critical index too big"):
        content, message = BAD_FILES[case]
        path = write(tmp_path / f"{case}.json", content)
        for verb in (["extend", model, "--out", tmp_path / "out"],
                     ["eval", model, "--tasks", "passkey", "--lengths", "64",
                      "--out", tmp_path / "eval"]):
            err = one_line_refusal(capsys, *verb, "--factors", path)
            assert message in err, (case, err)
    assert not (tmp_path / "out").exists() and not (tmp_path / "eval").exists()


def test_a_factors_file_of_another_method_is_refused(capsys, tmp_path):
    model = tmp_path / "tiny"
    model.mkdir()
    write(model / "config.json", TINY_CONFIG)
    longrope2 = write(tmp_path / "lr2.json", factor_file(method="longrope2", critical_index=3))
    eval_args = ["eval", model, "--tasks", "passkey", "--lengths", "64", "--out", tmp_path / "e"]
    err = one_line_refusal(capsys, *eval_args, "--method", "yarn", "--factors", longrope2)
    assert "holds longrope2 factors, not yarn" in err
    # A HF config names no method: it reads as longrope or longrope2 only.
    config = write(tmp_path / "config.json", {"max_position_embeddings": 128, "rope_scaling": {
        "type": "longrope", "long_factor": GOOD, "original_max_position_embeddings": 64}})
    err = one_line_refusal(capsys, *eval_args, "--method", "yarn", "--factors", config)
    assert "not yarn" in err
    # A saved scaling of yarn is no longrope2 file either.
    from ropebench.methods import get_extender

    saved = tmp_path / "yarn.json"
    get_extender("yarn").rescale(TINY, 128).save(saved)
    err = one_line_refusal(capsys, "extend", model, "--method", "longrope2", "--factors", saved,
                           "--out", tmp_path / "out")
    assert "holds yarn factors, not longrope2" in err
    assert load_scaling(saved, TINY, method="yarn").method == "yarn"


def test_only_regular_files_are_read(tmp_path):
    with pytest.raises(RopebenchError, match="not a regular file"):
        load_scaling(tmp_path, TINY, 128)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(RopebenchError, match="not a regular file"):
        load_scaling(fifo, TINY, 128)


def test_good_files_still_load(tmp_path):
    """The checks refuse only what is wrong: whole floats, a given critical pair, a v1 list."""
    scaling = load_scaling(write(tmp_path / "a.json", factor_file(target_length=128.0,
                                                                  critical_index=3)), TINY)
    assert scaling.method == "longrope2" and scaling.critical_index == 3
    v1 = load_scaling(write(tmp_path / "b.json", factor_file(method="longrope")), TINY)
    assert v1.method == "longrope" and v1.critical_index is None
    # No method, no NTK lower group (f_1 != f_c^(1/c) for any c > 1): read as LongRoPE.
    plain = load_scaling(write(tmp_path / "c.json", factor_file()), TINY)
    assert plain.method == "longrope"
    round_trip = tmp_path / "d.json"
    scaling.save(round_trip)
    assert load_scaling(round_trip, TINY) == scaling


def test_a_plan_entry_with_another_methods_factors_is_refused(tmp_path):
    from ropebench.run.plan import plan_from_dict, validate

    model = tmp_path / "tiny"
    model.mkdir()
    write(model / "config.json", TINY_CONFIG)
    longrope2 = write(tmp_path / "lr2.json", factor_file(method="longrope2", critical_index=3))

    def plan(method: str):
        return plan_from_dict({
            "model": str(model), "target_length": 128,
            "methods": [{"method": method, "factors": str(longrope2)}],
            "evaluate": {"tasks": ["passkey"], "lengths": [64]},
        })

    with pytest.raises(RopebenchError, match="holds longrope2 factors, not yarn"):
        validate(plan("yarn"))
    validate(plan("longrope2"))


def test_rope_info_refuses_a_longrope_config_with_unusable_factors(capsys, tmp_path):
    model = tmp_path / "broken"
    model.mkdir()
    write(model / "config.json", {**TINY_CONFIG, "max_position_embeddings": 128, "rope_scaling": {
        "type": "longrope", "long_factor": [1, 2, 3], "original_max_position_embeddings": 64}})
    err = one_line_refusal(capsys, "rope-info", model)
    assert "longrope factors are unusable" in err and "has 3 entries" in err


def test_su_is_read_as_longrope():
    """The first Phi-3 128K configs call the longrope type `su`; its window is the original one."""
    config = {**llama3_config(), "rope_scaling": {**llama3_config()["rope_scaling"], "type": "su"}}
    spec = spec_from_config_dict(config)
    assert spec.window == 8192 and spec.rope_type == "longrope"


def test_released_style_files_extend_a_model_end_to_end(capsys, tmp_path):
    """A HF longrope config and a LongRoPE CSV drive `extend`; the result reads back in rope-info."""
    from helpers import tiny_llama

    model = tmp_path / "tiny"
    tiny_llama(window=64).save_pretrained(model)  # 8 pairs, window 64
    long = [1.0, 4 ** (1 / 3), 4 ** (2 / 3), 4.0, 4.5, 5.0, 6.0, 8.0]  # NTK below pair 3, s = 4
    config = write(tmp_path / "config.json", {
        "max_position_embeddings": 256, "original_max_position_embeddings": 64,
        "rope_theta": 10000.0, "rope_scaling": {"type": "longrope", "long_factor": long,
                                                "short_factor": [1.0] * 8}})
    csv = write(tmp_path / "factors.csv", ",".join(map(str, long)))
    for source, extra in ((config, []), (csv, ["--target-length", "256"])):
        out = tmp_path / f"out-{source.suffix[1:]}"
        code, printed, err = run_cli(capsys, "extend", model, "--factors", source, *extra, "--out", out)
        assert code == 0, err
        assert printed.startswith("longrope2: window 64 -> 256 (s = 4)")
        params = json.loads((out / "config.json").read_text())["rope_parameters"]
        assert params["rope_type"] == "longrope" and params["long_factor"] == long
        code, printed, err = run_cli(capsys, "rope-info", out)
        assert code == 0, err
        assert "c = 3" in printed and "f_c = 4 = 1 s" in printed and "d_tcd = 3" in printed

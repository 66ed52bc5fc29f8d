"""`ropebench list`, `rope-info` and `extend`, including every bad input's one-line error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_llama, tiny_tokenizer

from ropebench.cli.main import main

PLUGIN_DIR = Path(__file__).parent / "plugin"

LLAMA3_8B = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_hidden_layers": 32,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "vocab_size": 128256,
    "torch_dtype": "bfloat16",
}
PHI3_MINI_2K = {
    "model_type": "phi3",
    "architectures": ["Phi3ForCausalLM"],
    "hidden_size": 3072,
    "intermediate_size": 8192,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "max_position_embeddings": 2048,
    "rope_theta": 10000.0,
    "vocab_size": 32064,
}


def write_config(directory: Path, config: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny")
    tiny_llama(window=32).save_pretrained(directory)
    tiny_tokenizer().save_pretrained(directory)
    return directory


# --- list -------------------------------------------------------------------------------------


def test_list_shows_extenders_tasks_and_plugins(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    for name in ("none", "pi", "ntk", "dynamic-ntk", "yarn", "ntk-by-parts", "llama3", "longrope2"):
        assert f"\n  {name} " in out
    assert "half-pi" in out and "[plugin]" in out
    assert "niah_single_1" in out and "ruler" in out

    code, out, _ = run_cli(capsys, "list", "--json")
    data = json.loads(out)
    assert data["extenders"]["half-pi"]["plugin"] is True
    assert data["extenders"]["yarn"]["plugin"] is False
    assert "passkey" in data["tasks"] and len(data["groups"]["ruler"]) == 13


# --- rope-info --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, expected",
    [(LLAMA3_8B, ("35", "24", "8192", "128")), (PHI3_MINI_2K, ("31", "19", "2048", "96"))],
    ids=["llama3-8b", "phi3-mini-2k"],
)
def test_rope_info_critical_indices(capsys, tmp_path, config, expected):
    directory = write_config(tmp_path / "model", config)  # config.json only: no weights
    code, out, _ = run_cli(capsys, "rope-info", str(directory))
    assert code == 0
    d_tcd, d10_tcd, window, rotary = expected
    assert f"d_tcd             {d_tcd} " in out
    assert f"d10_tcd           {d10_tcd} " in out
    assert f"window L          {window}" in out
    assert f"rotary dim        {rotary} " in out
    assert "  <- d_tcd" in out

    code, out, _ = run_cli(capsys, "rope-info", str(directory), "--json")
    info = json.loads(out)
    assert (info["d_tcd"], info["d10_tcd"]) == (int(d_tcd), int(d10_tcd))
    assert len(info["periods"]) == int(rotary) // 2


def test_rope_info_with_a_method_shows_its_factors(capsys, tmp_path):
    directory = write_config(tmp_path / "model", PHI3_MINI_2K)
    code, out, _ = run_cli(
        capsys, "rope-info", str(directory), "--method", "longrope2", "--target-length", "131072"
    )
    assert code == 0
    assert "s = 64, m = 1.243163" in out  # Phi3 2K -> 128K mscale
    assert "factor" in out.splitlines()[9]


def test_rope_info_reads_partial_rotary(capsys, tmp_path):
    config = {
        **PHI3_MINI_2K,
        "max_position_embeddings": 4096,
        "partial_rotary_factor": 0.75,
        "hidden_size": 3072,
        "num_attention_heads": 24,
    }  # Phi-4-mini shape
    directory = write_config(tmp_path / "model", config)
    code, out, _ = run_cli(capsys, "rope-info", str(directory), "--json")
    info = json.loads(out)
    assert (info["head_dim"], info["rotary_dim"], info["d_tcd"], info["d10_tcd"]) == (
        128,
        96,
        34,
        22,
    )


def test_rope_info_fills_transformers_defaults(capsys, tmp_path):
    config = {k: v for k, v in LLAMA3_8B.items() if k != "rope_theta"}  # old configs omit it
    directory = write_config(tmp_path / "model", config)
    code, out, _ = run_cli(capsys, "rope-info", str(directory), "--json")
    assert code == 0 and json.loads(out)["base"] == 10000.0


# --- extend -----------------------------------------------------------------------------------


def test_extend_writes_a_loadable_model(capsys, tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    out_dir = tmp_path / "yarn"
    code, out, err = run_cli(
        capsys,
        "extend",
        str(tiny_model_dir),
        "--method",
        "yarn",
        "--target-length",
        "128",
        "--set",
        "params.beta_fast=16",
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    assert "window 32 -> 128" in out and "rope_type yarn" in out
    model = AutoModelForCausalLM.from_pretrained(out_dir)
    assert model.config.rope_parameters["beta_fast"] == 16.0
    assert model.config.max_position_embeddings == 128
    assert (out_dir / "tokenizer.json").is_file()

    # The saved scaling is a factors file for a second extend, and the result is the same model.
    again = tmp_path / "again"
    code, _, err = run_cli(
        capsys,
        "extend",
        str(tiny_model_dir),
        "--factors",
        str(out_dir / "ropebench_scaling.json"),
        "--out",
        str(again),
    )
    assert code == 0, err
    first = json.loads((out_dir / "config.json").read_text())["rope_parameters"]
    assert json.loads((again / "config.json").read_text())["rope_parameters"] == first


def test_extend_with_searched_factors(capsys, tmp_path, tiny_model_dir):
    factors = tmp_path / "search.json"
    long = [1.0, 1.5, 2.0, 2.5, 4.0, 4.0, 4.5, 5.0]
    factors.write_text(json.dumps({"long_factor": long, "critical_index": 3, "target_length": 128}))
    out_dir = tmp_path / "lr2"
    code, _, err = run_cli(
        capsys,
        "extend",
        str(tiny_model_dir),
        "--method",
        "longrope2",
        "--factors",
        str(factors),
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    params = json.loads((out_dir / "config.json").read_text())["rope_parameters"]
    assert params["rope_type"] == "longrope" and params["long_factor"] == long


def test_extend_keeps_the_source_dtype(capsys, tmp_path):
    source = tmp_path / "bf16"
    tiny_llama(window=32).to(torch.bfloat16).save_pretrained(source)
    tiny_tokenizer().save_pretrained(source)
    out_dir = tmp_path / "out"
    code, _, err = run_cli(
        capsys,
        "extend",
        str(source),
        "--method",
        "pi",
        "--target-length",
        "64",
        "--out",
        str(out_dir),
    )
    assert code == 0, err
    assert json.loads((out_dir / "config.json").read_text())["dtype"] == "bfloat16"


# --- bad inputs: one line, exit code 2, no traceback ------------------------------------------------


def bad_inputs(tmp: Path, model: Path) -> dict[str, tuple[list[str], str]]:
    gpt2 = write_config(
        tmp / "gpt2",
        {"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_positions": 1024, "vocab_size": 50257},
    )
    broken = tmp / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "config.json").write_text("{ not json")
    short = tmp / "short.json"
    short.write_text(json.dumps({"long_factor": [1.0, 2.0], "target_length": 128}))
    nan = tmp / "nan.json"
    nan.write_text('{"long_factor": [NaN, 1, 1, 1, 1, 1, 1, 1], "target_length": 128}')
    extend = ["extend", str(model), "--out", str(tmp / "out")]
    return {
        "unknown method": (
            [*extend, "--method", "rope-magic", "--target-length", "128"],
            "unknown method 'rope-magic'; known methods: dca, dynamic-ntk, llama3, longrope, longrope2",
        ),
        "target inside window": (
            [*extend, "--method", "yarn", "--target-length", "32"],
            "target length 32 is not above the pretrained window 32",
        ),
        "model without rope": (["rope-info", str(gpt2)], "does not use RoPE"),
        "missing model dir": (["rope-info", str(tmp / "nowhere")], "does not exist"),
        "dir without config": (["rope-info", str(tmp)], "has no config.json"),
        "unreadable config": (["rope-info", str(broken)], "check the file is valid JSON"),
        "factor list length": ([*extend, "--factors", str(short)], "has 2 entries"),
        "nan factor": ([*extend, "--factors", str(nan)], "entry 0 is nan"),
        "negative factor": (
            [
                *extend,
                "--method",
                "longrope",
                "--target-length",
                "128",
                "--set",
                "params.long_factor=-1,1,1,1,1,1,1,1",
            ],
            "entry 0 is -1.0",
        ),
        "non-monotone upper": (
            [
                *extend,
                "--method",
                "longrope2",
                "--target-length",
                "128",
                "--set",
                "params.critical_index=3",
                "--set",
                "params.upper=4,3,5,5,5",
            ],
            "non-decreasing from pair 3",
        ),
        "bad --set": (
            [*extend, "--method", "pi", "--target-length", "128", "--set", "params.factor"],
            "is not KEY=VALUE",
        ),
        "method and target apart": (["rope-info", str(model), "--method", "pi"], "go together"),
    }


def test_bad_inputs_give_one_line_and_exit_2(capsys, tmp_path, tiny_model_dir):
    for case, (argv, message) in bad_inputs(tmp_path, tiny_model_dir).items():
        code, out, err = run_cli(capsys, *argv)
        assert code == 2, case
        assert message in err, (case, err)
        assert err.count("\n") == 1 and err.startswith("ropebench "), (case, err)
        assert "Traceback" not in err


def test_installed_command_reports_errors_without_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PLUGIN_DIR)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ropebench",
            "extend",
            str(tmp_path / "missing"),
            "--method",
            "pi",
            "--target-length",
            "128",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr

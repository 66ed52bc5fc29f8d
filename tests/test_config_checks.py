"""Configs and run inputs that used to end in a traceback or be silently accepted: each is now
one line, exit 2, naming the problem and the fix, before any weights load."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from ropebench.cli.main import main
from ropebench.errors import RopebenchError
from ropebench.io import LOCK_FILE
from ropebench.rope.config_checks import check_config
from ropebench.rope.spec import RopeSpec, spec_from_config_dict


@pytest.fixture(scope="module")
def model_dir(model_dir32) -> Path:
    return model_dir32


def _refused(argv, capsys, phrase: str) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("ropebench ") and "Traceback" not in err
    assert phrase.lower() in lines[0].lower(), lines[0]
    return lines[0]


def _variant(model_dir: Path, tmp: Path, edit) -> Path:
    folder = tmp / "variant"
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config = edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _set(**changes):
    def edit(config):
        for key, value in changes.items():
            if key.startswith("rope."):
                config["rope_parameters"][key[5:]] = value
            else:
                config[key] = value
        return config
    return edit


CONFIGS = {
    "float window": (_set(max_position_embeddings=32.5), "max_position_embeddings"),
    "float window that is whole": (_set(max_position_embeddings=32.0), "JSON integer"),
    "string head count": (_set(num_attention_heads="4"), "num_attention_heads"),
    "list as config": (lambda config: [config], "not an object"),
    "rope_parameters a list": (_set(rope_parameters=[10000.0]), "must be a mapping"),
    "unknown key in rope_parameters": (_set(**{"rope.rope_thetta": 10000.0}), "rope_thetta"),
    "negative original window": (_set(**{"rope.original_max_position_embeddings": -5}),
                                 "original_max_position_embeddings"),
    "negative original window at the top": (_set(original_max_position_embeddings=-5),
                                            "original_max_position_embeddings"),
    "partial_rotary_factor 0": (_set(**{"rope.partial_rotary_factor": 0}), "partial_rotary_factor"),
    "partial_rotary_factor too small": (_set(**{"rope.partial_rotary_factor": 0.05}),
                                        "no rotary pair"),
    "partial_rotary_factor above 1": (_set(**{"rope.partial_rotary_factor": 1.5}), "above 1"),
    "odd head_dim": (_set(head_dim=15), "is odd"),
    "odd rotary dim from partial": (_set(**{"rope.partial_rotary_factor": 0.75}, head_dim=18),
                                    "is odd"),
    "heads do not divide hidden": (_set(num_attention_heads=5, num_key_value_heads=5, head_dim=None),
                                   "not a multiple"),
    "unknown rope_type": (_set(**{"rope.rope_type": "yarm"}), "rope_type"),
    "rope_theta a boolean": (_set(**{"rope.rope_theta": True}), "rope_theta"),
    "factor infinite": (_set(**{"rope.rope_type": "linear", "rope.factor": 1e400}), "factor"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_a_bad_config_is_one_line_before_weights_load(model_dir, tmp_path, capsys, no_weights,
                                                      case):
    edit, phrase = CONFIGS[case]
    folder = _variant(model_dir, tmp_path, edit)
    for argv in (["eval", folder, "--tasks", "passkey", "--lengths", "64", "--samples", "1",
                  "--out", tmp_path / "out", "--no-progress"],
                 ["extend", folder, "--method", "pi", "--target-length", "128",
                  "--out", tmp_path / "out"],
                 ["rope-info", folder]):
        _refused(argv, capsys, phrase)
    assert not (tmp_path / "out").exists()


def test_good_configs_pass(model_dir):
    from ropebench.model.load import load_config_dict

    for config in (json.loads((model_dir / "config.json").read_text()),
                   load_config_dict("reference")):
        check_config(config)
        assert RopeSpec.from_config(config).n_pairs > 0


def test_per_layer_type_rope_parameters_are_checked_layer_by_layer():
    config = {"max_position_embeddings": 512, "hidden_size": 64, "num_attention_heads": 4,
              "rope_parameters": {
                  "full_attention": {"rope_type": "default", "rope_theta": 1e6},
                  "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}}
    check_config(config)
    config["rope_parameters"]["sliding_attention"]["rope_theat"] = 1.0
    with pytest.raises(RopebenchError, match="sliding_attention.*rope_theat"):
        check_config(config)


def test_a_wrong_type_never_falls_back_to_transformers_defaults():
    """spec_from_config_dict fills missing fields from transformers; a field of the wrong type
    must stop first, not reach transformers' config class (a traceback)."""
    with pytest.raises(RopebenchError, match="hidden_size"):
        spec_from_config_dict({"model_type": "llama", "hidden_size": "64",
                               "num_attention_heads": 4, "max_position_embeddings": 32})


# --- run inputs ---------------------------------------------------------------------------------


def _eval(model, tmp: Path, *extra) -> list:
    return ["eval", model, "--tasks", "passkey", "--lengths", "64", "--samples", "1", "--out",
            tmp / "out", "--no-progress", *extra]


def test_a_chat_template_that_raises_stops_before_the_weights_load(model_dir, tmp_path, capsys):
    folder = tmp_path / "chatty"
    shutil.copytree(model_dir, folder)
    (folder / "chat_template.jinja").write_text("{{ raise_exception('no system turn here') }}")
    # Garbage weights: had they been loaded first, the error would name them instead.
    (folder / "model.safetensors").write_bytes(b"\0garbage" * 64)
    line = _refused(_eval(folder, tmp_path), capsys, "chat template")
    assert "tasks.chat=false" in line
    _refused(_eval(folder, tmp_path, "--set", "tasks.chat=false"), capsys, "cannot load model")
    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps({"model": str(folder), "target_length": 128, "methods": ["pi"],
                                "evaluate": {"tasks": ["passkey"], "lengths": [64]}}))
    _refused(["compare", plan, "--out", tmp_path / "run"], capsys, "chat template")
    assert not (tmp_path / "run").exists()


def test_foreign_json_in_rows_jsonl_is_one_line(model_dir, tmp_path, capsys, no_weights):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).write_text("")
    (out / "rows.jsonl").write_text('{"hello": "world"}\n[1, 2, 3]\n')
    _refused(_eval(model_dir, tmp_path), capsys, "not a ropebench row")
    assert (out / "rows.jsonl").read_text() == '{"hello": "world"}\n[1, 2, 3]\n'


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_backend_vllm_without_the_package_is_one_line(model_dir, tmp_path, capsys, no_weights):
    _refused(_eval(model_dir, tmp_path, "--method", "pi", "--target-length", "128",
                   "--backend", "vllm"), capsys, "pip install vllm")
    assert not (tmp_path / "out" / "extended-model").exists()


def test_eval_refuses_a_method_the_factors_file_does_not_hold(model_dir, tmp_path, capsys,
                                                              no_weights):
    from ropebench.methods import get_extender

    spec = RopeSpec.from_config(json.loads((model_dir / "config.json").read_text()))
    factors = tmp_path / "pi.json"
    factors.write_text(json.dumps(get_extender("pi").rescale(spec, 128).to_dict()))
    _refused(_eval(model_dir, tmp_path, "--method", "yarn", "--factors", factors), capsys,
             "holds pi factors, not yarn")
    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps({
        "model": str(model_dir), "target_length": 128,
        "methods": [{"method": "yarn", "factors": str(factors)}],
        "evaluate": {"tasks": ["passkey"], "lengths": [64]}}))
    _refused(["compare", plan, "--out", tmp_path / "out", "--dry-run"], capsys,
             "holds pi factors, not yarn")


@pytest.mark.parametrize("key", ["train", "search", "params", "factors"])
def test_a_plan_cannot_give_the_baseline_a_stage(model_dir, tmp_path, capsys, no_weights, key):
    value = {"train": {"steps": 2}, "search": {"population": 2}, "params": {"factor": 2},
             "factors": "f.json"}[key]
    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps({
        "model": str(model_dir), "target_length": 128, "train": {"steps": 1},
        "methods": [{"method": "none", key: value}, "pi"],
        "evaluate": {"tasks": ["passkey"], "lengths": [64]}}))
    _refused(["compare", plan, "--out", tmp_path / "out", "--dry-run"], capsys,
             f"takes no {key}")


def test_the_baseline_without_a_stage_is_still_fine(model_dir, tmp_path, capsys, no_weights):
    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps({
        "model": str(model_dir), "target_length": 128, "train": {"steps": 1},
        "methods": ["none", {"method": "none", "label": "base2", "train": False}, "pi"],
        "evaluate": {"tasks": ["passkey"], "lengths": [64]}}))
    assert main(["compare", str(plan), "--out", str(tmp_path / "out"), "--dry-run"]) == 0

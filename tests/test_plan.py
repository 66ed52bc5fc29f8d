"""Comparison plans: YAML and flags, defaults per method, and every validation error up front."""

from __future__ import annotations

import textwrap

import pytest

from ropebench.errors import RopebenchError
from ropebench.run.plan import load_plan, plan_from_dict


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """Only config.json matters for planning: a 64-token window, 8 RoPE pairs."""
    from helpers import tiny_llama

    path = tmp_path_factory.mktemp("model")
    tiny_llama(window=64).config.save_pretrained(path)
    return str(path)


def _plan(model_dir, **changes):
    raw = {
        "model": model_dir,
        "target_length": 256,
        "search": {"population": 4, "iterations": 1},
        "train": {"steps": 3, "lr": 1e-3},
        "methods": ["pi", {"method": "yarn", "params": {"beta_fast": 16.0}, "train": {"steps": 5}},
                    {"method": "longrope2", "search": {"critical_index": 3}}],
        "evaluate": {"tasks": ["passkey", "niah_single_1"], "lengths": [64, "128", 256], "samples": 2},
    }
    raw.update(changes)
    return raw


def test_defaults_per_method(model_dir):
    plan = plan_from_dict(_plan(model_dir))
    assert [m.label for m in plan.methods] == ["none", "pi", "yarn", "longrope2"]
    none, pi, yarn, longrope2 = plan.methods
    assert none.is_baseline and none.search is None and none.train is None  # never trained
    assert pi.search is None and pi.train == {"steps": 3, "lr": 1e-3}
    assert yarn.params == {"beta_fast": 16.0} and yarn.train == {"steps": 5, "lr": 1e-3}
    # LongRoPE2 implements a search, so it searches with the plan's budget plus its own settings.
    assert longrope2.search == {"population": 4, "iterations": 1, "critical_index": 3}
    assert plan.evaluate.lengths == (64, 128, 256)


def test_yaml_with_flag_overrides(model_dir, tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: tiny
        model: {model_dir}
        target_length: 256
        methods: [none, pi, {{method: pi, label: pi-trained, train: {{steps: 2}}}}]
        evaluate: {{tasks: [passkey], lengths: [64, 256], samples: 3}}
        """))
    plan = load_plan(path, {"evaluate": {"samples": 1}, "out": "runs/x"})
    assert plan.name == "tiny" and plan.out == "runs/x"
    assert [(m.label, m.train) for m in plan.methods] == [("none", None), ("pi", None),
                                                          ("pi-trained", {"steps": 2})]
    assert plan.evaluate.samples == 1 and plan.evaluate.tasks == ("passkey",)


def test_lengths_accept_k_suffix(model_dir):
    plan = plan_from_dict(_plan(model_dir, target_length="1k",
                                evaluate={"tasks": "passkey", "lengths": "64,1k"}))
    assert plan.target_length == 1024 and plan.evaluate.lengths == (64, 1024)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"modle": "x"}, "unknown key 'modle'"),
        ({"target_length": 64}, "does not extend"),
        ({"target_length": -5}, "positive integer"),
        ({"methods": ["pi", "warp"]}, "unknown method 'warp'"),
        ({"methods": [{"method": "yarn", "params": {"beta_fats": 1}}]}, "unknown yarn setting 'beta_fats' .did you mean beta_fast"),
        ({"methods": [{"method": "longrope2", "search": {"popsize": 3}}]}, "unknown .*search setting 'popsize'"),
        ({"methods": [{"method": "pi", "train": {"steps": "many"}}]}, "steps='many' is not a whole number"),
        ({"methods": ["pi", {"method": "pi", "train": True}]}, "labels must be unique, pi repeats"),
        ({"methods": [{"label": "x"}]}, "mapping with a `method:` key"),
        ({"methods": [{"method": "pi", "factors": "/nonexistent.json"}]}, "does not exist"),
        ({"evaluate": {"tasks": ["passkey", "rulerr"], "lengths": [64]}}, "unknown task 'rulerr'"),
        ({"evaluate": {"tasks": ["passkey"], "lengths": [512]}}, "exceeds target_length"),
        ({"evaluate": {"tasks": ["passkey"]}}, "`lengths` must list"),
        ({"evaluate": {"tasks": ["passkey"], "lengths": [64], "samples": 0}}, "positive integer"),
        ({"evaluate": {"tasks": ["passkey"], "lengths": [64], "options": {"passkey": {"max_new": 5}}}},
         "unknown passkey option setting 'max_new' .did you mean max_new_tokens"),
        ({"evaluate": {"tasks": ["passkey"], "lengths": [64], "options": {"pll": {"stride": 5}}}},
         "options for 'pll', which is no task .did you mean ppl"),
        ({"methods": [{"method": "longrope2", "search": {"population": 4.5}}]}, "not a whole number"),
        ({"methods": [{"method": "longrope2", "search": {"population": -4}}]}, "below its minimum"),
        ({"methods": [{"method": "pi", "train": {"lr": float("nan")}}]}, "NaN"),
        ({"model": None}, "`model` is missing"),
        ({"model": "/no/such/model"}, "does not exist"),
    ],
)
def test_validation_errors(model_dir, change, message):
    with pytest.raises(RopebenchError, match=message):
        plan_from_dict(_plan(model_dir, **change))


def test_bad_yaml_is_one_clear_line(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(RopebenchError, match="not valid YAML") as info:
        load_plan(path)
    assert "\n" not in str(info.value)
    with pytest.raises(RopebenchError, match="does not exist"):
        load_plan(tmp_path / "missing.yaml")


def test_packaged_demo_plan_is_valid(tmp_path):
    """The demo's plan, as shipped, on any 512-token-window model (the reference model's shape)."""
    from helpers import tiny_llama

    from ropebench.cli.commands.demo import demo_plan_path

    tiny_llama(window=512).config.save_pretrained(tmp_path)
    plan = load_plan(demo_plan_path(), {"model": str(tmp_path)})
    assert [m.label for m in plan.methods] == ["none", "pi", "ntk", "yarn", "longrope2"]
    assert plan.method("longrope2").search is not None and plan.method("yarn").search is None
    steps = {m.train["steps"] for m in plan.methods if m.train is not None}
    assert len(steps) == 1 and plan.method("none").train is None  # the same training for all
    assert plan.target_length == 4096 and max(plan.evaluate.lengths) == 4096


def test_plan_wide_training_skips_training_free_methods(model_dir):
    """The plan's `train:` reaches methods that can train; an attention method is evaluated as it
    is (like the baseline), and a `train:` written on it is refused."""
    plan = plan_from_dict(_plan(model_dir, methods=["yarn", "dca"]))
    yarn, dca = plan.methods[1:]
    assert yarn.train == {"steps": 3, "lr": 1e-3}
    assert dca.train is None
    with pytest.raises(RopebenchError, match="dca is training-free"):
        plan_from_dict(_plan(model_dir, methods=[{"method": "dca", "train": {"steps": 2}}]))

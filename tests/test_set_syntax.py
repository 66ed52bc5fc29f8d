"""`--set SECTION.KEY=VALUE`: the same keys as a plan file, for every command; help lists them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ropebench.cli.commands import compare, search, train
from ropebench.cli.commands import eval as eval_command
from ropebench.cli.main import build_parser, main
from ropebench.run.overrides import parse_set
from ropebench.run.plan import load_plan
from ropebench.run.runner import settings_of
from ropebench.run.stages import plan_stages
from ropebench.settings import field_names, parse_settings, read_value

# Each setting twice: as a plan file writes it and as `--set` writes it.
PLAN_SETTINGS = {
    "search": {"population": 8, "iterations": 2, "baselines": ["pi"]},
    "train": {"steps": 50, "lr": 3.0e-4},
    "options": {"haystack": "pydoc", "niah": {"depths": 4}},
}
SET_ITEMS = ["search.population=8", "search.iterations=2", "search.baselines=[pi]",
             "train.steps=50", "train.lr=3.0e-4", "tasks.haystack=pydoc", "niah.depths=4"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    """Only config.json matters for a plan: a 64-token window."""
    from helpers import tiny_llama

    path = tmp_path_factory.mktemp("model")
    tiny_llama(window=64).config.save_pretrained(path)
    return str(path)


def _plan_file(folder: Path, model_dir: str, *, settings: bool) -> Path:
    evaluate = {"tasks": ["passkey", "niah"], "lengths": [64, 256], "samples": 2}
    raw = {"model": model_dir, "target_length": 256, "out": str(folder / "run"),
           "methods": ["pi", {"method": "yarn", "params": {"beta_fast": 32}}, "longrope2"],
           "evaluate": evaluate}
    if settings:
        raw.update(search=PLAN_SETTINGS["search"], train=PLAN_SETTINGS["train"])
        evaluate["options"] = PLAN_SETTINGS["options"]
    path = folder / f"plan-{settings}.yaml"
    path.write_text(json.dumps(raw))  # JSON is YAML
    return path


def test_a_plan_key_and_the_same_set_key_are_one_configuration(model_dir, tmp_path):
    in_file = load_plan(_plan_file(tmp_path, model_dir, settings=True))
    assert in_file.method("pi").train == PLAN_SETTINGS["train"]
    args = build_parser("compare").parse_args(
        ["compare", str(_plan_file(tmp_path, model_dir, settings=False)),
         *[arg for item in SET_ITEMS for arg in ("--set", item)]])
    on_command_line = load_plan(args.plan, compare.plan_overrides(args))
    assert on_command_line == in_file
    keys = [[s.key for s in ms.all()] for ms in plan_stages(on_command_line, {"model": "m"})]
    assert keys == [[s.key for s in ms.all()] for ms in plan_stages(in_file, {"model": "m"})]


def test_single_method_commands_read_the_plan_keys_the_same_way(model_dir, tmp_path):
    """What `train`, `search` and `eval` build from `--set` is what a plan's method gets."""
    from ropebench.methods import get_extender
    from ropebench.methods.evolution.settings import EvolutionSettings
    from ropebench.training.trainer import TrainSettings

    plan = load_plan(_plan_file(tmp_path, model_dir, settings=True))
    trained = parse_set(SET_ITEMS[3:5], train.TAKES, "train")
    assert (parse_settings(TrainSettings, trained.train, where="train")
            == settings_of("train", plan.method("pi").train, "pi"))
    searched = parse_set(SET_ITEMS[:3], search.TAKES, "search")
    assert (parse_settings(EvolutionSettings, searched.search, where="search")
            == settings_of("search", plan.method("longrope2").search, "longrope2"))
    params = parse_set(["params.beta_fast=32"], eval_command.TAKES, "eval").params
    in_plan = get_extender("yarn", plan.method("yarn").params).config
    assert get_extender("yarn", params).config == in_plan


def test_set_on_compare_overrides_the_plan_with_its_precedence(model_dir, tmp_path, capsys):
    path = _plan_file(tmp_path, model_dir, settings=True)
    raw = json.loads(path.read_text())
    raw["methods"][1]["train"] = {"steps": 5}  # a method's own budget wins, as in the file
    path.write_text(json.dumps(raw))
    argv = ["compare", str(path), "--set", "train.steps=3", "--set", "niah.depths=2",
            "--set", "search.population=4"]
    args = build_parser("compare").parse_args(argv)
    plan = load_plan(args.plan, compare.plan_overrides(args))
    assert plan.method("pi").train == {"steps": 3, "lr": 3.0e-4}
    assert plan.method("yarn").train == {"steps": 5, "lr": 3.0e-4}
    assert plan.method("longrope2").search == {**PLAN_SETTINGS["search"], "population": 4}
    # The plan's other options stay: niah keeps nothing else here, the shared haystack is kept.
    assert plan.evaluate.options == {"haystack": "pydoc", "niah": {"depths": 2}}
    assert main([*argv, "--dry-run"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()
             if line.startswith("  ")}
    assert "train 3 steps" in lines["pi"] and "train 5 steps" in lines["yarn"]


@pytest.mark.parametrize(("command", "dataclasses"), [
    ("train", ["ropebench.training.trainer:TrainSettings"]),
    ("search", ["ropebench.methods.evolution.settings:EvolutionSettings",
                "ropebench.methods.yarn:YarnConfig"]),
    ("compare", ["ropebench.training.trainer:TrainSettings",
                 "ropebench.methods.evolution.settings:EvolutionSettings"]),
    ("eval", ["ropebench.methods.llama3:Llama3Config", "ropebench.backends.vllm:VLLMOptions",
              "ropebench.tasks.base:GenerationOptions"]),
])
def test_help_lists_every_key_of_the_sections(command, dataclasses, capsys):
    import importlib

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for path in dataclasses:
        module, name = path.split(":")
        for key in field_names(getattr(importlib.import_module(module), name)):
            assert key in text, (command, key)


def test_help_of_eval_lists_the_options_of_every_task(capsys):
    from ropebench.tasks import get_task
    from ropebench.tasks.registry import TASKS

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in TASKS.names():
        assert name in text
        assert all(key in text for key in field_names(get_task(name).options_class())), name


@pytest.mark.parametrize(("text", "value"), [
    ("50", 50), ("3.0e-4", 3.0e-4), ("true", True), ("[1, 2]", [1, 2]), ("pydoc", "pydoc"),
    ("", ""), ("4,3,5", "4,3,5"), ("null", None),
])
def test_a_value_reads_as_in_a_plan_file(text, value):
    assert read_value(text) == value

"""Task options are typed dataclasses, parsed once where the plan or the command line is read:
a wrong value (a choice, a type, a bound) ends in one line and exit 2 before anything loads,
and the run hands the parsed options along instead of reading them again."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from helpers import tiny_llama, tiny_tokenizer

from ropebench.cli.main import main
from ropebench.errors import RopebenchError
from ropebench.run.evaluate import resolve_options
from ropebench.run.plan import plan_from_dict
from ropebench.run.runner import ComparisonRunner
from ropebench.settings import field_names, setting
from ropebench.tasks import get_task
from ropebench.tasks.base import GenerationOptions, GenerativeTask, Sample, Task, TaskOptions
from ropebench.tasks.registry import TASKS

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ROPEBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model")
    tiny_llama(window=128, seed=0).save_pretrained(root)
    tiny_tokenizer().save_pretrained(root)
    return root


def raw_plan(model_dir: Path, tasks: list[str], length: int = 256, **options) -> dict:
    return {"name": "options", "model": str(model_dir), "target_length": 512, "methods": ["none"],
            "evaluate": {"tasks": tasks, "lengths": [length], "samples": 1,
                         "options": {"max_new_tokens": 4, **options}}}


def one_line_refusal(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


# -- refused where the options are read -------------------------------------------------------


BAD = {  # --set item -> what the one line must say
    "tasks.fill=tihgt": "fill='tihgt' is not allowed (did you mean tight?)",
    "niah_single_1.fill=2": "choose from reference, tight",
    "tasks.max_new_tokens=abc": "not a whole number",
    "cwe.shots=-1": "below its minimum 0",
    "vt.layout=2025": "choose from reference, 2024",
    "niah.depth_spacing=log": "choose from linear, sigmoid",
    "mrcr.needles=0": "below its minimum 1",
    "tasks.chat=sometimes": "not a boolean",
}


@pytest.mark.parametrize("item", list(BAD))
def test_eval_refuses_a_bad_option_before_any_weights_load(item, model_dir, tmp_path, capsys,
                                                           no_weights):
    out = tmp_path / "out"
    err = one_line_refusal(capsys, ["eval", str(model_dir), "--tasks", "ruler,niah,mrcr",
                                    "--lengths", "256", "--samples", "1", "--out", str(out),
                                    "--no-progress", "--set", item])
    assert BAD[item] in err, err
    assert not out.exists()


@pytest.mark.parametrize("item", ["tasks.fill=tihgt", "tasks.max_new_tokens=abc",
                                  "cwe.positions=everywhere"])
def test_compare_refuses_a_bad_option_before_any_weights_load(item, model_dir, tmp_path, capsys,
                                                              no_weights):
    plan = tmp_path / "plan.yaml"
    plan.write_text(json.dumps(raw_plan(model_dir, ["ruler"])))
    err = one_line_refusal(capsys, ["compare", str(plan), "--out", str(tmp_path / "run"),
                                    "--quiet", "--set", item])
    assert "evaluate:" in err and item.split("=")[0].split(".")[1] in err, err
    assert not (tmp_path / "run").exists()


def test_a_fill_typo_in_a_plan_is_refused_with_the_fix(model_dir):
    with pytest.raises(RopebenchError, match=r"fill='tihgt' is not allowed.*choose from"):
        plan_from_dict(raw_plan(model_dir, ["niah_single_1"], fill="tihgt"))


def test_choices_hold_for_options_given_in_code(tok):
    """`samples(...)` builds the options in code, without the parser: choices still hold."""
    with pytest.raises(RopebenchError, match="did you mean tight"):
        get_task("niah_single_1").samples(tok, 1024, 1, 0, fill="tihgt")
    with pytest.raises(RopebenchError, match="wonderwords"):
        get_task("cwe").samples(tok, 1024, 1, 0, words="wonderword")


# -- typed, and parsed once ---------------------------------------------------------------------


def test_parsed_options_are_the_tasks_dataclass_with_the_given_keys():
    parsed = resolve_options({"fill": "tight", "max_new_tokens": "8", "niah": {"depths": 3}},
                             [get_task("cwe"), get_task("niah"), get_task("ppl")])
    cwe, grid, ppl = parsed["cwe"], parsed["niah"], parsed["ppl"]
    assert isinstance(cwe.values, get_task("cwe").Options)  # its declared dataclass
    assert isinstance(cwe.values, GenerationOptions)  # with the generation loop's options
    assert (cwe.values.fill, cwe.values.max_new_tokens, cwe.values.words) == ("tight", 8, "reference")
    assert cwe.given_values() == {"fill": "tight", "max_new_tokens": 8}  # what keys see
    assert grid.given_values() == {"max_new_tokens": 8, "depths": 3}  # the grid has no fill
    assert ppl.given == ()  # ppl takes none of the shared keys


def test_a_compare_parses_each_tasks_options_once(model_dir, tmp_path, monkeypatch):
    """Validation, the stage keys, the cost estimate and the evaluation all use one parse."""
    calls: list[str] = []
    read = Task.read_options

    def counted(self, values):
        calls.append(self.name)
        return read(self, values)

    monkeypatch.setattr(Task, "read_options", counted)
    plan = plan_from_dict(raw_plan(model_dir, ["passkey", "niah_single_1"], 512, fill="tight"))
    runner = ComparisonRunner(plan, tmp_path / "run", progress=False)
    runner.run()
    assert sorted(calls) == ["niah_single_1", "passkey"]
    assert all(stage.kind != "eval" for stage in runner.pending())


# -- a task plugin declares its options in a dataclass -----------------------------------------


@dataclasses.dataclass
class EchoOptions:
    word: str = setting("yes", choices=("yes", "no"))
    repeats: int = setting(1, min=1, max=4)


class Echo(GenerativeTask):
    """A toy task: the model is asked to repeat a word (it never does); a run that the test
    marks `broken` builds no samples at all."""

    name = "toy_echo"
    Options = EchoOptions
    broken = False

    def samples(self, tokenizer, length, n, seed, **options):
        if Echo.broken:
            raise RopebenchError("no samples today")
        word = " ".join([options["word"]] * options["repeats"])
        return [Sample(self.name, length, i, f"Say {word}:", "", [word], word, 2,
                       metadata={"word": options["word"]}) for i in range(n)]

    def score(self, sample, prediction):
        return float(sample.references[0] in prediction)


@pytest.fixture
def echo():
    TASKS.add("toy_echo", Echo())
    Echo.broken = False
    yield get_task("toy_echo")
    TASKS._builtins.pop("toy_echo")


def test_a_plugin_tasks_declared_options_are_checked_and_typed(echo):
    assert echo.prompt_options() == ("word", "repeats")
    assert set(field_names(echo.options_class())) >= {"word", "repeats", "stop_when_settled"}
    parsed = resolve_options({"toy_echo": {"repeats": "3"}}, [echo])["toy_echo"]
    assert isinstance(parsed, TaskOptions) and parsed.values.repeats == 3
    with pytest.raises(RopebenchError, match="choose from yes, no"):
        resolve_options({"word": "maybe"}, [echo])
    with pytest.raises(RopebenchError, match="above its maximum 4"):
        resolve_options({"repeats": 9}, [echo])


def test_a_stage_without_rows_runs_again_on_the_next_run(echo, model_dir, tmp_path):
    """However a stage comes to write no rows, it is not done: the next run computes it."""
    raw = raw_plan(model_dir, ["toy_echo"], toy_echo={"repeats": 2})
    raw["evaluate"]["options"].pop("max_new_tokens")
    Echo.broken = True
    first = ComparisonRunner(plan_from_dict(raw), tmp_path / "run", progress=False)
    first.run()
    assert [s.kind for s in first.pending()] == ["eval"]
    Echo.broken = False
    second = ComparisonRunner(plan_from_dict(raw), tmp_path / "run", progress=False)
    second.run()
    assert second.pending() == []
    stage = second.graph[0].evals["toy_echo"]
    rows = [json.loads(line) for line in
            (second.store.path(stage) / "rows.jsonl").read_text().splitlines()]
    assert [r["references"] for r in rows] == [["yes yes"]]

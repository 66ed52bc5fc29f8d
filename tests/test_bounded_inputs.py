"""Tiny inputs cost bounded memory and time: YAML alias bombs, huge or endless files (`/dev/zero`,
a FIFO), numbers far past any real run and fractional lengths are refused in one line (exit 2)
before any weights load; `reference card` checks its inputs before measuring."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from ropebench import bounded
from ropebench.cli.main import main
from ropebench.errors import RopebenchError


@pytest.fixture(scope="module")
def model_dir(model_dir32) -> Path:
    return model_dir32


@pytest.fixture
def deadline():
    """A refused input must not spin or hang: 20 s at most."""
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("hung")))
    signal.alarm(20)
    yield
    signal.alarm(0)


def _refused(argv, capsys, phrase: str) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("ropebench ") and phrase.lower() in lines[0].lower(), lines[0]
    return lines[0]


def _eval(model: Path, tmp: Path, *extra) -> list:
    return ["eval", model, "--tasks", "passkey", "--lengths", "64", "--samples", "1", "--out",
            tmp / "out", "--no-progress", *extra]


def _plan_text(model: Path, tmp: Path, **changes) -> str:
    plan = {"model": str(model), "target_length": 128, "out": str(tmp / "out"), "methods": ["pi"],
            "evaluate": {"tasks": ["passkey"], "lengths": [64], "samples": 1}}
    plan.update(changes)
    return json.dumps(plan)


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


BOMB = "".join(
    [f"a0: &a0 [{', '.join(['lol'] * 9)}]\n"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 9)]
)


# --- YAML ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["name", "label", "option"])
def test_a_yaml_alias_bomb_in_a_plan_is_refused_at_once(model_dir, tmp_path, capsys, no_weights,
                                                        deadline, where):
    model = str(model_dir)
    value = {"name": "name: *a8", "label": "methods: [{method: pi, label: *a8}]",
             "option": "evaluate: {tasks: [passkey], lengths: [64], samples: 1, options: "
                       "{passkey: {depth: *a8}}}"}[where]
    base = {"name": f"model: {model}\ntarget_length: 128\nmethods: [pi]\nevaluate: "
                    "{tasks: [passkey], lengths: [64], samples: 1}\n",
            "label": f"model: {model}\ntarget_length: 128\nevaluate: "
                     "{tasks: [passkey], lengths: [64], samples: 1}\n",
            "option": f"model: {model}\ntarget_length: 128\nmethods: [pi]\n"}[where]
    plan = _write(tmp_path, "bomb.yaml", BOMB + base + value + "\n")
    start = time.perf_counter()
    _refused(["compare", plan, "--out", tmp_path / "out", "--dry-run"], capsys, "YAML")
    assert time.perf_counter() - start < 5
    assert not (tmp_path / "out").exists()


def test_a_yaml_alias_bomb_in_a_set_value_is_refused(model_dir, tmp_path, capsys, no_weights,
                                                     deadline):
    bomb = "[" + ", ".join(["&x [1, 2, 3, 4, 5, 6, 7, 8, 9]"] + ["*x"] * 150) + "]"
    _refused(_eval(model_dir, tmp_path, "--set", f"passkey.depth={bomb}"), capsys, "aliases")


def test_small_alias_use_still_works():
    text = "defaults: &d {steps: 2, lr: 0.001}\ntrain:\n  <<: *d\n  steps: 3\nagain: *d\n"
    assert bounded.load_yaml(text, "plan") == {
        "defaults": {"steps": 2, "lr": 0.001}, "train": {"steps": 3, "lr": 0.001},
        "again": {"steps": 2, "lr": 0.001}}


def test_a_self_referring_alias_is_refused():
    with pytest.raises(RopebenchError, match="refers to itself"):
        bounded.load_yaml("a: &a [1, *a]", "plan")


def test_a_duplicated_key_in_a_plan_is_refused(model_dir, tmp_path, capsys, no_weights):
    text = f"model: {model_dir}\ntarget_length: 128\nmethods: [pi]\ntarget_length: 256\n"
    plan = _write(tmp_path, "dup.yaml", text + "evaluate: {tasks: [passkey], lengths: [64]}\n")
    line = _refused(["compare", plan, "--out", tmp_path / "out", "--dry-run"], capsys,
                    "appears twice")
    assert "target_length" in line and "lines 2 and 4" in line


def test_a_duplicated_key_in_a_nested_mapping_is_refused(model_dir, tmp_path, capsys, no_weights):
    plan = _write(tmp_path, "dup.yaml", f"model: {model_dir}\ntarget_length: 128\n"
                  "methods: [{method: yarn, params: {factor: 4, factor: 8}}]\n"
                  "evaluate: {tasks: [passkey], lengths: [64]}\n")
    _refused(["compare", plan, "--out", tmp_path / "out", "--dry-run"], capsys, "'factor'")


# --- files that are not files, or too big ------------------------------------------------------


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "folder"])
def test_factors_and_plans_must_be_regular_files(model_dir, tmp_path, capsys, no_weights,
                                                 deadline, kind):
    path = {"dev-zero": Path("/dev/zero"), "fifo": tmp_path / "fifo",
            "folder": tmp_path / "folder"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    if kind == "folder":
        path.mkdir()
    phrase = "a folder" if kind == "folder" else "not a regular file"
    _refused(_eval(model_dir, tmp_path, "--factors", path), capsys, phrase)
    _refused(["extend", model_dir, "--factors", path, "--out", tmp_path / "x"], capsys, phrase)
    _refused(["train", model_dir, "--method", "pi", "--target-length", "128", "--factors", path,
              "--out", tmp_path / "x"], capsys, phrase)
    _refused(["compare", path, "--out", tmp_path / "x", "--dry-run"], capsys, phrase)


def test_a_plan_past_the_size_cap_is_refused(model_dir, tmp_path, capsys, no_weights):
    text = _plan_text(model_dir, tmp_path)[:-1] + ', "pad": "' + "x" * bounded.MAX_PLAN_BYTES + '"}'
    plan = _write(tmp_path, "big.yaml", text)
    _refused(["compare", plan, "--dry-run"], capsys, "larger than 1 MiB")


def test_a_config_past_the_size_cap_is_refused(model_dir, tmp_path, capsys, no_weights,
                                               monkeypatch):
    monkeypatch.setattr(bounded, "MAX_CONFIG_BYTES", 4096)
    config = json.loads((model_dir / "config.json").read_text())
    config["padding"] = "x" * 8192
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    _refused(["eval", folder, *_eval(model_dir, tmp_path)[2:]], capsys, "the most ropebench reads")


def test_a_factors_file_past_the_size_cap_is_refused(model_dir, tmp_path, capsys, no_weights,
                                                     monkeypatch):
    monkeypatch.setattr(bounded, "MAX_FACTORS_BYTES", 1024)
    factors = _write(tmp_path, "big.json", json.dumps({"long_factor": [2.0] * 8,
                                                       "history": ["x" * 2048]}))
    _refused(_eval(model_dir, tmp_path, "--factors", factors), capsys, "the most ropebench reads")
    _refused(["extend", model_dir, "--factors", factors, "--out", tmp_path / "x"], capsys,
             "the most ropebench reads")


def test_read_bounded_reads_at_most_the_cap(tmp_path):
    path = _write(tmp_path, "f.json", "x" * 100)
    assert bounded.read_bounded(path, "f", 100) == "x" * 100
    with pytest.raises(RopebenchError, match="larger than"):
        bounded.read_bounded(path, "f", 99)


# --- numbers past any real run, fractions --------------------------------------------------------


CASES = {
    "--samples 10**15": (["--samples", str(10**15)], "100000"),
    "--seed negative": (["--seed", "-1"], "--seed"),
    "--lengths huge": (["--lengths", "99999999999"], "16777216"),
    "--lengths fraction": (["--lengths", "64.5"], "whole numbers"),
    "--lengths fraction k": (["--lengths", "1.5k"], "whole numbers"),
    "--target-length huge": (["--method", "pi", "--target-length", str(10**12)], "16777216"),
    "document_tokens 1e12": (["--set", "ppl.document_tokens=1000000000000"], "16777216"),
    "stride 1e12": (["--set", "ppl.stride=1000000000000"], "16777216"),
    "batch_size huge": (["--set", "backend.batch_size=100000000000"], "maximum"),
    "max_new_tokens huge": (["--set", "tasks.max_new_tokens=100000000000"], "maximum"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_eval_numbers_have_an_upper_bound(model_dir, tmp_path, capsys, no_weights, deadline, case):
    extra, phrase = CASES[case]
    argv = _eval(model_dir, tmp_path)
    if extra[0] in argv:  # replace the flag's value
        at = argv.index(extra[0])
        argv = argv[:at] + argv[at + 2:]
    if "ppl." in " ".join(extra):
        argv[argv.index("passkey")] = "ppl"
    _refused(argv + extra, capsys, phrase)
    assert not (tmp_path / "out").exists()


PLAN_CASES = {
    "samples": ({"evaluate": {"tasks": ["passkey"], "lengths": [64], "samples": 10**9}}, "100000"),
    "lengths": ({"evaluate": {"tasks": ["passkey"], "lengths": [10**10]}}, "16777216"),
    "target": ({"target_length": 10**10}, "16777216"),
    "seed": ({"evaluate": {"tasks": ["passkey"], "lengths": [64], "seed": 2**40}}, "maximum"),
    "fractional length text": ({"evaluate": {"tasks": ["passkey"], "lengths": ["1.5k"]}},
                               "integer"),
    "fractional target": ({"target_length": 128.5}, "whole number"),
    "train steps": ({"train": {"steps": 10**12}}, "maximum"),
    "search population": ({"methods": ["longrope2"], "search": {"population": 10**12}},
                          "maximum"),
    "ppl document_tokens": ({"evaluate": {"tasks": ["ppl"], "lengths": [64], "options": {
        "ppl": {"document_tokens": 10**12}}}}, "16777216"),
}


@pytest.mark.parametrize("case", list(PLAN_CASES))
def test_plan_numbers_have_an_upper_bound(model_dir, tmp_path, capsys, no_weights, case):
    changes, phrase = PLAN_CASES[case]
    plan = _write(tmp_path, "plan.yaml", _plan_text(model_dir, tmp_path, **changes))
    _refused(["compare", plan, "--dry-run"], capsys, phrase)


def test_train_and_reference_numbers_have_an_upper_bound(model_dir, tmp_path, capsys, no_weights):
    train = ["train", model_dir, "--method", "pi", "--out", tmp_path / "out"]
    _refused(train + ["--target-length", str(10**12)], capsys, "16777216")
    _refused(train + ["--target-length", "128", "--set", "train.seed=-1"], capsys, "minimum")
    _refused(train + ["--target-length", "128", "--set", f"train.grad_accum={10**12}"], capsys,
             "maximum")
    _refused(["extend", model_dir, "--method", "pi", "--target-length", str(10**12), "--out",
              tmp_path / "out"], capsys, "16777216")
    _refused(["search", model_dir, "--method", "longrope2", "--target-length", str(10**12),
              "--out", tmp_path / "out" / "f.json"], capsys, "16777216")
    _refused(["reference", "train", "--steps", str(10**12), "--out", tmp_path / "r"], capsys,
             "--steps")
    assert not (tmp_path / "out").exists() and not (tmp_path / "r").exists()


# --- reference card -----------------------------------------------------------------------------


def test_reference_card_checks_its_inputs_before_measuring(tmp_path, capsys, no_weights,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(["reference", "card", "--train-dir", tmp_path / "missing", "--out", tmp_path / "c"],
             capsys, "--train-dir")
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "train_config.json").write_text("{}")
    _refused(["reference", "card", "--train-dir", partial, "--out", tmp_path / "c"], capsys,
             "loss_log.jsonl")
    _refused(["reference", "card", "--samples", str(10**9), "--train-dir", partial], capsys,
             "--samples")
    assert not (tmp_path / "c").exists()

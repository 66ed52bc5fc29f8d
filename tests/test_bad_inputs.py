"""Bad input: exit code 2, one line that names the problem and the fix, no traceback, and nothing
written outside --out (nor --out itself when the input was refused up front)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ropebench.cli.main import main


@pytest.fixture(scope="module")
def model_dir(model_dir32) -> Path:
    return model_dir32


def _variant(model_dir: Path, tmp: Path, name: str, edit) -> str:
    target = tmp / name
    shutil.copytree(model_dir, target)
    edit(target)
    return str(target)


def _config(**changes):
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            if key == "rope_theta":
                config["rope_parameters"]["rope_theta"] = value
            else:
                config[key] = value
        (folder / "config.json").write_text(json.dumps(config))
    return edit


def _weights(kind: str):
    def edit(folder: Path) -> None:
        path = folder / "model.safetensors"
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if kind == "truncated" else b"\x00garbage" * 64)
    return edit


_count = iter(range(10**6))


def _factors(tmp: Path, payload) -> str:
    path = tmp / f"factors-{next(_count)}.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return str(path)


def _plan(tmp: Path, model: str, *, train=None, search=None, evaluate=None, methods=None,
          raw: bytes | None = None) -> str:
    path = tmp / f"plan-{next(_count)}.yaml"
    if raw is not None:
        path.write_bytes(raw)
        return str(path)
    plan = {"model": model, "target_length": 128, "out": str(tmp / "out"),
            "methods": methods or ["pi"],
            "evaluate": {"tasks": ["passkey"], "lengths": [64], "samples": 1, **(evaluate or {})}}
    if train is not None:
        plan["train"] = train
    if search is not None:
        plan["search"] = search
    path.write_text(json.dumps(plan))  # JSON is YAML
    return str(path)


def _run_dir(tmp: Path, manifest: str | None = None, rows: str | None = None) -> str:
    run = tmp / f"run-{next(_count)}"
    run.mkdir()
    if manifest is not None:
        (run / "manifest.json").write_text(manifest)
    if rows is not None:
        stage = run / "eval" / "x"
        stage.mkdir(parents=True)
        (stage / "rows.jsonl").write_text(rows)
    return str(run)


GOOD_ROW = json.dumps({"task": "passkey", "length": 64, "method": "pi", "score": 1.0})
MANIFEST = json.dumps({"methods": [], "target_length": 128})
PAIRS = 4  # tiny_llama: head_dim 16 -> 8 rotary pairs; a wrong count is refused too


def cases(m: str, t: Path) -> dict[str, tuple[list[str], str]]:
    """case -> (argv, a phrase the one-line error must contain)."""
    out = str(t / "out")
    ev = ["eval", m, "--tasks", "passkey", "--lengths", "64", "--samples", "1", "--out", out,
          "--no-progress"]
    pi = ["--method", "pi", "--target-length", "128"]
    yarn = ["--method", "yarn", "--target-length", "128"]
    ntk = ["--method", "ntk", "--target-length", "128"]
    tr = ["train", m, "--method", "pi", "--target-length", "128", "--out", out,
          "--set", "train.steps=1"]
    se = ["search", m, "--method", "longrope2", "--target-length", "128",
          "--out", str(t / "f.json"), "--no-progress", "--set", "search.population=2",
          "--set", "search.iterations=0", "--set", "search.documents=1",
          "--set", "search.baselines="]
    ex = ["extend", m, "--out", out]
    a_file = t / "a-file"
    a_file.write_text("x")
    return {
        # 6: NaN / negative / zero / infinite settings
        "yarn attention_factor nan": (ev + yarn + ["--set", "params.attention_factor=nan"], "NaN"),
        "pi factor negative": (ev + pi + ["--set", "params.factor=-2"], "minimum"),
        "pi factor zero": (ev + pi + ["--set", "params.factor=0"], "minimum"),
        "ntk factor inf": (ev + ntk + ["--set", "params.factor=inf"], "infinite"),
        "ntk factor huge": (ev + ntk + ["--set", "params.factor=1e300"], "maximum"),
        "yarn beta_fast nan": (ev + yarn + ["--set", "params.beta_fast=nan"], "NaN"),
        "yarn beta_fast inf": (ev + yarn + ["--set", "params.beta_fast=inf"], "infinite"),
        "yarn beta_fast negative": (ev + yarn + ["--set", "params.beta_fast=-5"], "greater than 0"),
        "yarn beta_slow above beta_fast": (ev + yarn + ["--set", "params.beta_slow=40"],
                                           "below beta_fast"),
        "yarn factor text": (ev + yarn + ["--set", "params.factor=big"], "not a number"),
        "dynamic alpha zero": (ev + ["--method", "dynamic-ntk", "--target-length", "128",
                                     "--set", "params.alpha=0"], "greater than 0"),
        "llama3 low_freq_factor negative": (ev + ["--method", "llama3", "--target-length", "128",
                                                  "--set", "params.low_freq_factor=-1"],
                                            "greater than 0"),
        "longrope2 mscale unknown": (ev + ["--method", "longrope2", "--target-length", "128",
                                           "--set", "params.mscale=yarm"], "not allowed"),
        "unknown --set key": (ev + pi + ["--set", "params.facter=2"], "did you mean factor"),
        "--set without =": (ev + pi + ["--set", "params.factor"], "KEY=VALUE"),
        "--set without a section": (ev + pi + ["--set", "factor=2"], "params.factor=2"),
        "unknown --set section": (ev + pi + ["--set", "parms.factor=2"], "did you mean params"),
        "--set section of another command": (ev + pi + ["--set", "train.steps=2"],
                                             "takes no train.KEY"),
        "--set params without a method": (ev + ["--set", "params.factor=2"], "--method"),
        "vllm's option on hf": (ev + ["--set", "backend.max_model_len=256"], "max_model_len"),
        "batch size zero": (ev + ["--set", "backend.batch_size=0"], "minimum"),
        "engine option as a task option": (ev + ["--set", "tasks.batch_size=4"],
                                           "backend.batch_size"),
        "backend option of a wrong type": (ev + ["--backend", "vllm", "--set",
                                                 "backend.tensor_parallel_size=two"], "integer"),
        "unknown backend": (ev + ["--backend", "vlm"], "did you mean vllm"),
        "samples zero": (ev[:-5] + ["--samples", "0", "--out", out, "--no-progress"], "--samples"),
        # 7: unknown and malformed options
        "unknown scoped option": (ev[:3] + ["ppl"] + ev[4:] + ["--set", "ppl.strid=256"], "stride"),
        "unknown shared option": (ev + ["--set", "tasks.max_new_tokns=4"], "max_new_tokens"),
        "unknown task as a section": (ev + ["--set", "paskey.max_new_tokens=4"], "passkey"),
        "stride not a number": (ev[:3] + ["ppl"] + ev[4:] + ["--set", "tasks.stride=abc"],
                                "whole number"),
        "max_new_tokens negative": (ev + ["--set", "tasks.max_new_tokens=-5"], "minimum"),
        "chat not a boolean": (ev + ["--set", "tasks.chat=maybe"], "boolean"),
        "option without =": (ev + ["--set", "tasks.stride"], "KEY=VALUE"),
        # tasks, lengths, labels, methods
        "empty tasks": (ev[:3] + [""] + ev[4:], "--tasks is empty"),
        "unknown task": (ev[:3] + ["passkye"] + ev[4:], "passkey"),
        "lengths not numbers": (ev[:5] + ["abc"] + ev[6:], "--lengths"),
        "lengths zero": (ev[:5] + ["0"] + ev[6:], "positive"),
        "length that cannot finish": (ev[:5] + ["1048576"] + ev[6:], "--force"),
        "label escapes the folder": (ev + ["--label", "x/../../../../NAME"], "label"),
        "label with slash": (ev + ["--label", "a/b"], "label"),
        "unknown method": (ev + ["--method", "yarm", "--target-length", "128"], "yarn"),
        "method without target": (ev + ["--method", "pi"], "--target-length"),
        "target inside the window": (ev + ["--method", "pi", "--target-length", "16"], "window"),
        # models
        "model folder missing": (["eval", str(t / "nope")] + ev[2:], "does not exist"),
        "folder without config": (["eval", str(t)] + ev[2:], "config.json"),
        "rope_theta not a number": (["eval", _variant(Path(m), t, "theta-text", _config(rope_theta="abc"))]
                                    + ev[2:], "rope_theta"),
        "rope_theta negative": (["eval", _variant(Path(m), t, "theta-neg", _config(rope_theta=-1))]
                                + ev[2:], "rope_theta"),
        "window not a number": (["eval", _variant(Path(m), t, "window-text",
                                                  _config(max_position_embeddings="long"))]
                                + ev[2:], "max_position_embeddings"),
        "corrupted weights": (["eval", _variant(Path(m), t, "garbage", _weights("garbage"))]
                              + ev[2:], "cannot load model"),
        "truncated weights": (["eval", _variant(Path(m), t, "truncated", _weights("truncated"))]
                              + ev[2:], "cannot load model"),
        # factors files
        "factors not numbers": (ev + ["--factors", _factors(t, {"long_factor": ["a"] * PAIRS * 2,
                                                               "target_length": 128})], "numbers"),
        "factors target text": (ev + ["--factors", _factors(t, {"long_factor": [2.0] * 8,
                                                               "target_length": "abc"})], "factors file"),
        "factors nan": (ev + ["--factors", _factors(t, '{"long_factor": [NaN, 2, 2, 2, 2, 2, 2, 2],'
                                                    ' "target_length": 128}')], "finite"),
        "factors attention text": (ev + ["--factors", _factors(t, {"long_factor": [2.0] * 8,
                                                                  "target_length": 128,
                                                                  "attention_factor": "hot"})],
                                   "factors file"),
        "factors not json": (ev + ["--factors", _factors(t, "{nope")], "factors file"),
        "factors missing": (ev + ["--factors", str(t / "none.json")], "does not exist"),
        # output paths
        "eval --out is a file": (ev[:-2] + [str(a_file), "--no-progress"], "is a file"),
        "eval --out under a file": (ev[:-2] + [str(a_file / "sub"), "--no-progress"], "Not a directory"),
        "eval --out name too long": (ev[:-2] + [str(t / ("x" * 300)), "--no-progress"], "too long"),
        # train
        "train lr nan": (tr + ["--set", "train.lr=nan"], "NaN"),
        "train lr negative": (tr + ["--set", "train.lr=-1"], "greater than 0"),
        "train steps zero": (tr[:-1] + ["train.steps=0"], "minimum"),
        "train batch size zero": (tr + ["--set", "train.batch_size=0"], "minimum"),
        "train warmup negative": (tr + ["--set", "train.warmup_steps=-1"], "minimum"),
        "train unknown setting": (tr + ["--set", "train.stpes=2"], "did you mean steps"),
        "train --out is a file": (tr[:-3] + [str(a_file), "--set", "train.steps=1"], "is a file"),
        "train target inside window": (tr[:5] + ["16"] + tr[6:], "window"),
        "train unknown method": (tr[:3] + ["yarm"] + tr[4:], "yarn"),
        "train data missing": (tr + ["--set", "train.data=./no-such-folder"], "does not exist"),
        "train factor nan": (tr + ["--set", "params.factor=nan"], "NaN"),
        "train layout of another method": (tr + ["--set", "params.mixed=false"],
                                           "unknown pi setting"),
        # search
        "search parents zero": (se + ["--set", "search.parents=0"], "minimum"),
        "search population negative": (se + ["--set", "search.population=-4"], "minimum"),
        "search mutation prob": (se + ["--set", "search.mutation_prob=2"], "maximum"),
        "search unknown setting": (se + ["--set", "search.populaton=4"], "did you mean population"),
        "search --out a folder": (se[:7] + [str(t)] + se[8:], "is a folder"),
        "search target inside window": (se[:5] + ["16"] + se[6:], "window"),
        "search samples zero": (se + ["--set", "search.documents=0"], "minimum"),
        "search n_hat of another method": (se + ["--set", "search.n_hat=4"], "longrope only"),
        # extend
        "extend factor negative": (ex + pi + ["--set", "params.factor=-2"], "minimum"),
        "extend nothing to do": (ex, "--method"),
        "extend --out a file": (ex[:-1] + [str(a_file)] + pi, "is a file"),
        # rope-info
        "rope-info missing model": (["rope-info", str(t / "nope")], "does not exist"),
        # report
        "report threshold negative": (["report", _run_dir(t), "--threshold", "-50"], "0 to 100"),
        "report threshold nan": (["report", _run_dir(t), "--threshold", "nan"], "0 to 100"),
        "report run dir missing": (["report", str(t / "nope")], "not a folder"),
        "report corrupt manifest": (["report", _run_dir(t, manifest="{torn")], "manifest"),
        "report corrupt middle row": (["report", _run_dir(t, MANIFEST, "{bad\n" + GOOD_ROW + "\n")],
                                      "corrupt"),
        "report score not a number": (["report", _run_dir(t, MANIFEST, json.dumps(
            {"task": "passkey", "length": 64, "method": "pi", "score": "high"}) + "\n")], "score"),
        # compare plans (checked by --dry-run before any weights load)
        "plan not utf-8": (["compare", _plan(t, m, raw=b"model: \xff\xfe\n"), "--dry-run"], "UTF-8"),
        "plan population negative": (["compare", _plan(t, m, methods=["longrope2"],
                                                       search={"population": -4}), "--dry-run"],
                                     "minimum"),
        "plan steps negative": (["compare", _plan(t, m, train={"steps": -5}), "--dry-run"], "minimum"),
        "plan lr nan": (["compare", _plan(t, m, train={"lr": float("nan")}), "--dry-run"], "NaN"),
        "plan stride text": (["compare", _plan(t, m, evaluate={"tasks": ["ppl"],
                                                                "options": {"stride": "abc"}}),
                              "--dry-run"], "whole number"),
        "plan unknown option": (["compare", _plan(t, m, evaluate={"options": {"ppl": {"strid": 2}}}),
                                 "--dry-run"], "ppl"),
        "plan float length": (["compare", _plan(t, m, evaluate={"lengths": [64.5]}), "--dry-run"],
                              "whole number"),
        "plan float samples": (["compare", _plan(t, m, evaluate={"samples": 1.5}), "--dry-run"],
                               "whole number"),
        "plan nan factors": (["compare", _plan(t, m, methods=[{"method": "longrope2", "factors": _factors(
            t, '{"long_factor": [NaN, 2, 2, 2, 2, 2, 2, 2], "target_length": 128}')}]), "--dry-run"],
                             "finite"),
        "plan bad label": (["compare", _plan(t, m, methods=[{"method": "pi", "label": "../x"}]),
                            "--dry-run"], "label"),
        "plan method params nan": (["compare", _plan(t, m, methods=[
            {"method": "yarn", "params": {"beta_fast": float("nan")}}]), "--dry-run"], "NaN"),
        "demo --out a file": (["demo", "--out", str(a_file)], "is a file"),
        "compare --out a file": (["compare", _plan(t, m), "--out", str(a_file), "--dry-run"], "is a file"),
        "compare --set steps negative": (["compare", _plan(t, m, train={"steps": 2}), "--dry-run",
                                          "--set", "train.steps=-5"], "minimum"),
        "compare --set unknown section": (["compare", _plan(t, m), "--dry-run",
                                           "--set", "trian.steps=2"], "did you mean train"),
        "compare --set unknown key": (["compare", _plan(t, m), "--dry-run",
                                       "--set", "search.populaton=2"], "did you mean population"),
        "compare --set params": (["compare", _plan(t, m), "--dry-run", "--set", "params.factor=2"],
                                 "in its entry"),
        "compare --set unknown task option": (["compare", _plan(t, m), "--dry-run", "--set",
                                               "passkey.max_new_tokns=2"], "max_new_tokens"),
        "demo --set unknown key": (["demo", "--out", str(a_file), "--set", "train.stpes=2"],
                                   "did you mean steps"),
    }


# The case names, without building any file (the argv builders run inside each test).
NAMES = [
    line.split('"')[1] for line in Path(__file__).read_text().splitlines()
    if line.startswith('        "') and '": (' in line
]


@pytest.mark.parametrize("case", NAMES)
def test_bad_input_exits_2_with_one_line(case, model_dir, tmp_path, capsys, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(tmp_path)
    argv, phrase = cases(str(model_dir), tmp_path)[case]
    monkeypatch.chdir(cwd)
    before = sorted(p.name for p in model_dir.iterdir())
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (case, err)
    lines = [line for line in err.splitlines() if line.strip() and not _progress(line)]
    assert len(lines) == 1 and lines[0].startswith("ropebench "), (case, err)
    assert "Traceback" not in err
    assert phrase.lower() in lines[0].lower(), (case, lines[0])
    assert list(cwd.iterdir()) == [], case  # nothing written in the working directory
    assert sorted(p.name for p in model_dir.iterdir()) == before
    assert not (tmp_path / "out").exists() or case.startswith(("eval --out", "plan", "compare")), case
    assert not (tmp_path.parent / "NAME").exists()


def _progress(line: str) -> bool:
    """Progress bars of libraries (weight loading) are not error lines."""
    return "it/s]" in line or "%|" in line


def test_there_are_enough_cases():
    assert len(NAMES) >= 60


def test_a_missing_relative_path_is_not_taken_for_a_hub_id(model_dir, tmp_path, capsys,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    code = main(["eval", "runs/model", "--tasks", "passkey", "--out", "o", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]

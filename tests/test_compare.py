"""The comparison runner end to end on a micro model: run, interrupt, resume, cache, report.

An uninterrupted run is the reference; a run interrupted in-process and a run whose process is
killed must resume to identical rows, and a changed setting must recompute only what depends on it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ropebench.reports import write_report
from ropebench.reports.results import load_run
from ropebench.run import runner as compare
from ropebench.run.estimate import estimate_seconds
from ropebench.run.plan import plan_from_dict
from ropebench.run.runner import ComparisonRunner
from ropebench.run.stages import plan_stages

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")  # shared with the browser test
def workspace(tmp_path_factory):
    """A 128-token-window micro Llama with its tokenizer, and a folder of training text."""
    import pydoc_data.topics

    from helpers import tiny_llama, tiny_tokenizer

    root = tmp_path_factory.mktemp("compare")
    tiny_llama(window=128).save_pretrained(root / "model")
    tiny_tokenizer().save_pretrained(root / "model")
    (root / "data").mkdir()
    for i, text in enumerate(list(pydoc_data.topics.topics.values())[:30]):
        (root / "data" / f"{i}.txt").write_text(text)
    return root


def raw_plan(workspace: Path) -> dict:
    return {
        "name": "micro",
        "model": str(workspace / "model"),
        "target_length": 512,
        "search": {"population": 4, "iterations": 1, "parents": 2, "mutations": 1,
                   "crossovers": 1, "documents": 1},
        "train": {"steps": 2, "lr": 1e-3, "warmup_steps": 0, "log_every": 1,
                  "data": str(workspace / "data")},
        "methods": ["none", "pi", "longrope2"],
        "evaluate": {"tasks": ["passkey", "niah_single_1"], "lengths": [512], "samples": 2,
                     "options": {"max_new_tokens": 12}},
    }


def rows_of(run_dir: Path) -> list[tuple]:
    """Everything a row says about the model (timings left out), in a stable order."""
    rows = load_run(run_dir).rows
    keep = rows[["method", "task", "length", "index", "score", "prediction"]]
    return sorted(map(tuple, keep.itertuples(index=False)))


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "runlog.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def reference_run(workspace):
    """The uninterrupted run every other run is compared with."""
    run_dir = workspace / "reference-run"
    ComparisonRunner(plan_from_dict(raw_plan(workspace)), run_dir, progress=False).run()
    return run_dir


def test_keys_follow_their_inputs(workspace):
    plan = plan_from_dict(raw_plan(workspace))
    changed = raw_plan(workspace)
    changed["methods"] = ["none", {"method": "pi", "train": {"steps": 3}}, "longrope2"]
    before = {ms.method.label: ms for ms in plan_stages(plan, {"id": 1})}
    after = {ms.method.label: ms for ms in plan_stages(plan_from_dict(changed), {"id": 1})}
    assert before["pi"].scaling.key == after["pi"].scaling.key
    assert before["pi"].train.key != after["pi"].train.key
    assert before["pi"].evals["passkey"].key != after["pi"].evals["passkey"].key  # downstream
    for label in ("none", "longrope2"):
        assert [s.key for s in before[label].all()] == [s.key for s in after[label].all()]
    retuned = raw_plan(workspace)
    retuned["evaluate"]["options"]["passkey"] = {"max_new_tokens": 8}
    tuned = {ms.method.label: ms for ms in plan_stages(plan_from_dict(retuned), {"id": 1})}
    assert tuned["pi"].evals["passkey"].key != before["pi"].evals["passkey"].key
    assert tuned["pi"].evals["niah_single_1"].key == before["pi"].evals["niah_single_1"].key
    other_model = {ms.method.label: ms for ms in plan_stages(plan, {"id": 2})}
    assert other_model["pi"].scaling.key != before["pi"].scaling.key


def test_search_keys_hold_every_resolved_setting(workspace):
    """A search stage's key holds the settings the search runs with, defaults included: LongRoPE
    (v1) searches on plain perplexity by default, wherever the search is started from."""
    from ropebench.run.stages import resolved_search

    def scaling_key(method: dict) -> str:
        raw = raw_plan(workspace)
        raw["methods"] = ["none", method]
        return plan_stages(plan_from_dict(raw), {"id": 1})[1].scaling.key

    plan = plan_from_dict({**raw_plan(workspace), "methods": ["none", "longrope", "longrope2"]})
    fitness = {m.label: resolved_search(m)["fitness"] for m in plan.methods if m.search is not None}
    assert fitness == {"longrope": "ppl", "longrope2": "needle_ppl"}
    implicit = scaling_key({"method": "longrope"})
    assert scaling_key({"method": "longrope", "search": {"fitness": "ppl"}}) == implicit
    assert scaling_key({"method": "longrope", "search": {"fitness": "needle_ppl"}}) != implicit


def test_run_writes_every_artifact(reference_run):
    manifest = json.loads((reference_run / "manifest.json").read_text())
    assert [m["label"] for m in manifest["methods"]] == ["none", "pi", "longrope2"]
    for method in manifest["methods"]:
        stages = [method["scaling"], *([method["train"]] if method["train"] else []),
                  *method["evals"].values()]
        assert all(s["done"] and (reference_run / s["path"] / "done").is_file() for s in stages)
    results = load_run(reference_run)
    longrope2 = next(m for m in results.methods if m.label == "longrope2")
    assert longrope2.scaling["provenance"] == "searched" and longrope2.fitness_history
    assert longrope2.losses and longrope2.train_tokens > 0
    assert {"passkey", "niah_single_1"} <= set(results.rows["task"])
    starts = [e for e in events(reference_run) if e["event"] == "run_start"]
    assert starts[0]["environment"]["versions"]["torch"]


def test_rerun_is_all_cached(workspace, reference_run):
    before = rows_of(reference_run)
    runner = ComparisonRunner(plan_from_dict(raw_plan(workspace)), reference_run, progress=False)
    assert runner.pending() == []
    runner.run()
    log = events(reference_run)
    last_start = max(i for i, e in enumerate(log) if e["event"] == "run_start")
    assert {e["event"] for e in log[last_start + 1:]} == {"stage_cached", "run_end"}
    assert rows_of(reference_run) == before


def test_changed_setting_recomputes_only_its_dependents(workspace, reference_run):
    changed = raw_plan(workspace)
    changed["methods"] = ["none", {"method": "pi", "train": {"steps": 3}}, "longrope2"]
    runner = ComparisonRunner(plan_from_dict(changed), reference_run, progress=False)
    pending = {(s.kind, s.label) for s in runner.pending()}
    assert pending == {("train", "pi"), ("eval", "pi-passkey"), ("eval", "pi-niah_single_1")}


def test_injected_interrupt_then_resume(workspace, reference_run, monkeypatch):
    run_dir = workspace / "interrupted-run"
    plan = plan_from_dict(raw_plan(workspace))
    real_train = ComparisonRunner._train

    def interrupted_train(self, ms, folder):
        if ms.method.label == "longrope2":  # after the search artifact is written
            raise KeyboardInterrupt
        return real_train(self, ms, folder)

    monkeypatch.setattr(ComparisonRunner, "_train", interrupted_train)
    with pytest.raises(KeyboardInterrupt):
        ComparisonRunner(plan, run_dir, progress=False).run()
    assert events(run_dir)[-1]["event"] == "run_interrupted"
    assert not load_run(run_dir).complete
    monkeypatch.setattr(ComparisonRunner, "_train", real_train)

    runner = ComparisonRunner(plan, run_dir, progress=False)
    assert {(s.kind, s.label) for s in runner.pending()} == {
        ("train", "longrope2"), ("eval", "longrope2-passkey"), ("eval", "longrope2-niah_single_1")}
    runner.run()
    assert rows_of(run_dir) == rows_of(reference_run)
    assert load_run(run_dir).complete


def test_killed_process_resumes_to_identical_results(workspace, reference_run):
    import yaml

    plan_file = workspace / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(raw_plan(workspace)))
    run_dir = workspace / "killed-run"
    command = [sys.executable, "-m", "ropebench", "compare", str(plan_file), "--out", str(run_dir),
               "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(compare.__file__).parents[2])}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Kill as soon as the first training artifact is finished: mid-run, scaling stages done.
        deadline = time.monotonic() + 240
        while not list(run_dir.glob("stages/train/*/done")):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no training artifact appeared"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert not load_run(run_dir).complete

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert any(e["event"] == "stage_cached" for e in events(run_dir))
    assert rows_of(run_dir) == rows_of(reference_run)

    html = write_report(run_dir).read_text()
    assert "incomplete" not in html and html.count("data:image/png;base64,") >= 3


def test_plan_from_flags(workspace, tmp_path, capsys):
    from ropebench.cli.main import main

    code = main(["compare", "--model", str(workspace / "model"), "--target-length", "512",
                 "--methods", "pi,yarn", "--tasks", "passkey", "--lengths", "512",
                 "--out", str(tmp_path / "run"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "none " in out and "yarn " in out and "Stages: 6 in all, 0 cached, 6 to run." in out
    # The budget from config.json alone: memory of one forward, time of the pending work.
    assert re.search(r"Memory: about [\d.]+ GiB for one forward at 512 tokens", out)
    assert re.search(r"Time: at least [\d.]+ min for the stages still to run", out)
    assert not (tmp_path / "run" / "manifest.json").exists()  # a dry run writes nothing
    assert main(["compare", "--model", str(workspace / "model"), "--out", str(tmp_path)]) == 2
    assert "give a PLAN file, or the flags --target-length, --methods" in capsys.readouterr().err


def test_settings_accept_yaml_lists():
    from ropebench.training.trainer import TrainSettings

    settings = compare.settings_of("train", {"betas": [0.8, 0.9], "steps": 5}, "yarn")
    assert isinstance(settings, TrainSettings)
    assert settings.betas == (0.8, 0.9) and settings.steps == 5


def test_budget_counts_only_pending_work(workspace, reference_run, tmp_path):
    plan = plan_from_dict(raw_plan(workspace))
    assert estimate_seconds(ComparisonRunner(plan, reference_run, progress=False)) == 0.0
    fresh = estimate_seconds(ComparisonRunner(plan, tmp_path / "new", progress=False))
    assert fresh > 0.0


def test_shared_options_reach_only_the_tasks_that_take_them(workspace, tmp_path):
    """`max_new_tokens` is shared: passkey takes it, ppl does not, and both stages run."""
    raw = {**raw_plan(workspace), "methods": ["none"]}
    raw["evaluate"] = {**raw["evaluate"], "tasks": ["passkey", "ppl"]}
    ComparisonRunner(plan_from_dict(raw), tmp_path / "run", progress=False).run()
    rows = load_run(tmp_path / "run").rows
    assert (rows["task"] == "passkey").sum() == 2 and (rows["task"] == "ppl").sum() == 1
    assert float(rows[rows["task"] == "ppl"]["score"].iloc[0]) > 1.0

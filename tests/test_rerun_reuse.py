"""Reruns compute only what is missing, interrupts lose at most the batch in flight, and an
evaluation that produced nothing is never cached.

Work is counted at the backend: prompts generated and perplexity forwards run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ropebench.backends.hf import HFBackend, HFOptions
from ropebench.cli.main import main
from ropebench.run.evaluate import read_rows, run_evaluation
from ropebench.run.plan import plan_from_dict
from ropebench.run.runner import ComparisonRunner


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ROPEBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def work(monkeypatch):
    """Counts of the forward work every HF backend does: prompts generated, NLL passes."""
    counts = {"prompts": 0, "nll": 0}
    generate, nll = HFBackend.generate, HFBackend.nll

    def counted_generate(self, prompts, *args, **kwargs):
        counts["prompts"] += len(prompts)
        return generate(self, prompts, *args, **kwargs)

    def counted_nll(self, *args, **kwargs):
        counts["nll"] += 1
        return nll(self, *args, **kwargs)

    monkeypatch.setattr(HFBackend, "generate", counted_generate)
    monkeypatch.setattr(HFBackend, "nll", counted_nll)
    return counts


def raw_plan(model_dir128: Path, lengths: list[int], samples: int, **engine) -> dict:
    return {
        "name": "reuse", "model": str(model_dir128), "target_length": 512, "methods": ["none", "pi"],
        "evaluate": {"tasks": ["passkey", "ppl"], "lengths": lengths, "samples": samples,
                     "options": {"max_new_tokens": 4}},
        **({"backend": {"name": "hf", **engine}} if engine else {}),
    }


def rows_of(run_dir: Path) -> list[tuple]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    rows = [r for m in manifest["methods"] for stage in m["evals"].values()
            for r in read_rows(run_dir / stage["path"])]
    return sorted((r["method"], r["task"], r["length"], r["index"], r["score"], r["prediction"])
                  for r in rows)


def run_plan(raw: dict, run_dir: Path) -> ComparisonRunner:
    runner = ComparisonRunner(plan_from_dict(raw), run_dir, progress=False)
    runner.run()
    return runner


def test_compare_computes_only_new_lengths_and_samples(model_dir128, tmp_path, work):
    run_dir = tmp_path / "run"
    run_plan(raw_plan(model_dir128, [256], 2), run_dir)
    assert work == {"prompts": 2 * 2, "nll": 2 * 2}  # 2 methods x 2 samples / 2 documents

    work.update(prompts=0, nll=0)
    run_plan(raw_plan(model_dir128, [256, 384], 2), run_dir)
    assert work == {"prompts": 2 * 2, "nll": 2 * 2}  # the new length only

    work.update(prompts=0, nll=0)
    run_plan(raw_plan(model_dir128, [256, 384], 3), run_dir)
    # Passkey: the third sample at each length. Perplexity averages every document into one
    # row, so its rows (2 methods x 2 lengths) are measured again over 3 documents.
    assert work == {"prompts": 2 * 2, "nll": 2 * 2 * 3}

    work.update(prompts=0, nll=0)
    final = raw_plan(model_dir128, [256, 384], 3, batch_size=1, engine="hf")
    assert ComparisonRunner(plan_from_dict(final), run_dir, progress=False).pending() == []
    assert ComparisonRunner(plan_from_dict(raw_plan(model_dir128, [256], 2)), run_dir,
                            progress=False).pending() == []  # the first plan is still cached
    run_plan(final, tmp_path / "fresh")
    assert rows_of(run_dir) == rows_of(tmp_path / "fresh")
    # Each stage folder holds exactly its own plan's rows.
    assert len([r for r in rows_of(run_dir) if r[1] == "passkey"]) == 2 * 2 * 3


def test_eval_command_computes_only_new_lengths_and_samples(model_dir128, tmp_path, work):
    def run(out, lengths, samples):
        argv = ["eval", str(model_dir128), "--tasks", "passkey", "--lengths", lengths, "--samples",
                str(samples), "--out", str(out), "--no-progress", "--set", "tasks.max_new_tokens=4"]
        assert main(argv) == 0
        return sorted((r["length"], r["index"], r["prediction"]) for r in read_rows(out))

    run(tmp_path / "a", "256", 2)
    work.update(prompts=0)
    run(tmp_path / "a", "256,384", 2)
    assert work["prompts"] == 2
    work.update(prompts=0)
    rows = run(tmp_path / "a", "256,384", 3)
    assert work["prompts"] == 2
    assert rows == run(tmp_path / "fresh", "256,384", 3)


# -- interrupts --------------------------------------------------------------------------------


def interrupt_on_call(monkeypatch, n: int) -> None:
    """The n-th generate call is interrupted (Ctrl-C while its batch is in flight)."""
    generate, calls = HFBackend.generate, []

    def interrupted(self, prompts, *args, **kwargs):
        calls.append(len(prompts))
        if len(calls) == n:
            raise KeyboardInterrupt
        return generate(self, prompts, *args, **kwargs)

    monkeypatch.setattr(HFBackend, "generate", interrupted)


def test_an_interrupt_loses_only_the_batch_in_flight(model_dir128, tmp_path, monkeypatch):
    from ropebench.model.load import load_model

    model, tok = load_model(str(model_dir128))

    def evaluate(out):
        return run_evaluation(HFBackend(model, tok, options=HFOptions(batch_size=4)),
                              method="none", tasks=["passkey"], lengths=[256], samples=12,
                              seed=0, out_dir=out, progress=False, options={"max_new_tokens": 4})

    with monkeypatch.context() as patch:
        interrupt_on_call(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            evaluate(tmp_path / "out")
    assert sorted(r["index"] for r in read_rows(tmp_path / "out")) == [0, 1, 2, 3]
    evaluate(tmp_path / "out")
    evaluate(tmp_path / "fresh")
    rows = lambda out: sorted((r["index"], r["prediction"]) for r in read_rows(out))  # noqa: E731
    assert rows(tmp_path / "out") == rows(tmp_path / "fresh") and len(rows(tmp_path / "out")) == 12


@pytest.mark.parametrize("call, saved", [(1, "nothing was saved"),
                                         (3, "8 finished rows are saved")])
def test_eval_interrupt_says_what_was_saved(model_dir128, tmp_path, monkeypatch, capsys, call, saved):
    interrupt_on_call(monkeypatch, call)
    argv = ["eval", str(model_dir128), "--tasks", "passkey", "--lengths", "256", "--samples", "12",
            "--out", str(tmp_path / "out"), "--no-progress", "--set", "tasks.max_new_tokens=4",
            "--set", "backend.batch_size=4"]
    assert main(argv) == 130
    assert saved in capsys.readouterr().err
    assert len(read_rows(tmp_path / "out")) == 4 * (call - 1)


def _train_argv(model_dir128: Path, tmp_path: Path) -> list[str]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "0.txt").write_text((Path(json.__file__).read_text() * 3)[:6000])
    return ["train", str(model_dir128), "--method", "pi", "--target-length", "256",
            "--out", str(tmp_path / "out"), "--set", "train.steps=3", "--set", "train.save_every=1",
            "--set", "train.warmup_steps=0", "--set", f"train.data={data}"]


def test_train_interrupt_before_any_checkpoint_says_nothing_was_saved(model_dir128, tmp_path,
                                                                      monkeypatch, capsys):
    from ropebench.training import trainer

    def interrupted(step, settings):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "learning_rate", interrupted)  # during the first step
    assert main(_train_argv(model_dir128, tmp_path)) == 130
    err = capsys.readouterr().err
    assert "nothing resumable was saved" in err and "finished work is saved" not in err
    assert trainer.resumable_checkpoint(tmp_path / "out") is None


def test_train_interrupt_after_a_checkpoint_names_it(model_dir128, tmp_path, monkeypatch, capsys):
    from ropebench.training import trainer

    swap_in = trainer._swap_in

    def then_interrupt(out_dir):
        swap_in(out_dir)
        raise KeyboardInterrupt  # right after the first checkpoint is in place

    monkeypatch.setattr(trainer, "_swap_in", then_interrupt)
    assert main(_train_argv(model_dir128, tmp_path)) == 130
    assert "the checkpoint of step 1 in" in capsys.readouterr().err
    assert trainer.resumable_checkpoint(tmp_path / "out") is not None


# -- an evaluation that produced nothing -------------------------------------------------------


def test_an_eval_stage_without_rows_is_never_cached(model_dir128, tmp_path, capsys):
    import yaml

    raw = raw_plan(model_dir128, [16], 2)  # passkey does not fit in 16 tokens: every length skipped
    raw["methods"], raw["evaluate"]["tasks"] = ["none"], ["passkey"]
    runner = run_plan(raw, tmp_path / "run")
    assert [s.kind for s in runner.pending()] == ["eval"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["methods"][0]["evals"]["passkey"]["done"] is False
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert main(["compare", str(plan_file), "--out", str(tmp_path / "run"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "produced no rows" in err and "skipping passkey at 16" in err
    # A report of a run without rows is one line, not a traceback.
    assert main(["report", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no result rows yet" in err and "\n" not in err


def test_an_empty_stage_marked_done_by_an_older_release_runs_again(model_dir128, tmp_path):
    raw = raw_plan(model_dir128, [256], 1)
    raw["methods"], raw["evaluate"]["tasks"] = ["none"], ["passkey"]
    runner = run_plan(raw, tmp_path / "run")
    stage = runner.graph[0].evals["passkey"]
    marker = runner.store.path(stage) / "done"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "rows": 0}))
    assert runner.pending() == [stage]

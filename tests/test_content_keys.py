"""Stage keys and row fingerprints come from the content of every file a stage reads.

Each input kind is changed in place in the ways that keep its name, size or times (the weights
overwritten with other weights of the same size, the weights copied over with their old times as
`cp -p` does, training data rewritten, a factor file rewritten): every dependent stage recomputes
and the rerun gives what a fresh run gives.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import tiny_llama, tiny_tokenizer

from ropebench import content
from ropebench.cli.main import main
from ropebench.run.evaluate import read_rows
from ropebench.run.plan import plan_from_dict
from ropebench.run.runner import ComparisonRunner
from ropebench.run.stages import model_fingerprint, plan_stages

WEIGHTS = "model.safetensors"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test has its own hash cache (never the user's)."""
    monkeypatch.setenv("ROPEBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two micro models with the same config and tokenizer: weights of one size, other bytes."""
    root = tmp_path_factory.mktemp("models")
    tok = tiny_tokenizer()
    for name, seed in (("a", 0), ("b", 5)):
        tiny_llama(window=128, seed=seed).save_pretrained(root / name)
        tok.save_pretrained(root / name)
    a, b = (root / n / WEIGHTS for n in "ab")
    assert a.stat().st_size == b.stat().st_size and a.read_bytes() != b.read_bytes()
    return root


def copy_model(models: Path, name: str, to: Path) -> Path:
    shutil.copytree(models / name, to)
    return to


def overwrite_in_place(target: Path, source: Path) -> None:
    """Other bytes into the same file (same inode, same size)."""
    inode = target.stat().st_ino
    with target.open("r+b") as handle:
        handle.write(source.read_bytes())
    assert target.stat().st_ino == inode


def copy_keeping_times(target: Path, source: Path) -> None:
    """`cp -p` of other content: the target ends with its old size and mtime."""
    before = target.stat()
    shutil.copyfile(source, target)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def raw_plan(model: Path, **evaluate) -> dict:
    return {
        "name": "keys", "model": str(model), "target_length": 512, "methods": ["none", "pi"],
        "evaluate": {"tasks": ["passkey"], "lengths": [256], "samples": 2,
                     "options": {"max_new_tokens": 4}, **evaluate},
    }


def rows_of(run_dir: Path) -> list[tuple]:
    """Every row of a run's finished eval stages, timings left out, in a stable order."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    rows = [r for m in manifest["methods"] for stage in m["evals"].values()
            for r in read_rows(run_dir / stage["path"])]
    return sorted((r["method"], r["task"], r["length"], r["index"], r["score"], r["prediction"],
                   r["fingerprint"]) for r in rows)


def run_plan(raw: dict, run_dir: Path) -> ComparisonRunner:
    runner = ComparisonRunner(plan_from_dict(raw), run_dir, progress=False)
    runner.run()
    return runner


# -- the hash cache --------------------------------------------------------------------------


def test_cache_rehashes_whenever_the_stat_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(content, "_SETTLED_NS", -1)  # remember even files written just now
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 1000)
    b.write_bytes(b"y" * 1000)
    cache = content.HashCache()
    first = cache.sha256(a)
    assert cache.sha256(a) == first and cache.hashed == [str(a.resolve())]  # remembered
    overwrite_in_place(a, b)
    assert cache.sha256(a) == content.stream_sha256(b) != first
    a.write_bytes(b"x" * 1000)
    copy_keeping_times(a, b)
    assert cache.sha256(a) == content.stream_sha256(b)
    assert len(cache.hashed) == 3  # each change read the bytes again


def test_cache_survives_runs_and_never_remembers_a_file_changed_just_now(tmp_path, monkeypatch):
    path = tmp_path / "w.bin"
    path.write_bytes(b"1234")
    content.content_sha256(path)
    assert not content.HashCache().entries  # written a moment ago: not trusted by its stat
    monkeypatch.setattr(content, "_SETTLED_NS", -1)
    content.content_sha256(path)
    cache = content.HashCache()
    assert cache.sha256(path) == content.stream_sha256(path) and cache.hashed == []


def test_a_foreign_cache_file_is_ignored(tmp_path):
    cache_file = Path(os.environ["ROPEBENCH_CACHE"]) / content.CACHE_NAME
    cache_file.parent.mkdir(parents=True)
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    stat = path.stat()
    forged = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ino": stat.st_ino,
              "dev": stat.st_dev, "ctime_ns": "x", "sha256": "0" * 64}
    for junk in ("[1, 2]", "not json", json.dumps({str(path.resolve()): forged})):
        cache_file.write_text(junk)
        assert content.content_sha256(path) == content.stream_sha256(path)


# -- stage keys, one test per input kind ------------------------------------------------------


@pytest.mark.parametrize("change", [overwrite_in_place, copy_keeping_times])
def test_changed_weights_change_every_stage_key(models, tmp_path, change):
    model = copy_model(models, "a", tmp_path / "model")
    plan = plan_from_dict(raw_plan(model))
    before = [s.key for ms in plan_stages(plan, model_fingerprint(str(model))) for s in ms.all()]
    change(model / WEIGHTS, models / "b" / WEIGHTS)
    after = [s.key for ms in plan_stages(plan, model_fingerprint(str(model))) for s in ms.all()]
    assert not set(before) & set(after)


def test_rewritten_training_data_changes_train_and_eval_keys(models, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "0.txt").write_text("alpha " * 50)
    raw = raw_plan(models / "a")
    raw["methods"] = ["none", {"method": "pi", "train": {"steps": 1, "data": str(data)}}]
    plan = plan_from_dict(raw)
    model_id = model_fingerprint(str(models / "a"))
    before = plan_stages(plan, model_id)[1]
    (data / "0.txt").write_text("omega " * 50)  # same name, same size
    after = plan_stages(plan, model_id)[1]
    assert before.scaling.key == after.scaling.key
    assert before.train.key != after.train.key
    assert before.evals["passkey"].key != after.evals["passkey"].key


def test_rewritten_factor_file_changes_the_scaling_key(models, tmp_path):
    factors = tmp_path / "factors.json"
    factors.write_text(json.dumps({"long_factor": [1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.0],
                                   "target_length": 512}))
    raw = raw_plan(models / "a")
    raw["methods"] = ["none", {"method": "longrope2", "factors": str(factors)}]
    plan = plan_from_dict(raw)
    model_id = model_fingerprint(str(models / "a"))
    before = plan_stages(plan, model_id)[1]
    factors.write_text(factors.read_text().replace("1.5", "1.6"))
    after = plan_stages(plan, model_id)[1]
    assert before.scaling.key != after.scaling.key
    assert before.evals["passkey"].key != after.evals["passkey"].key


def test_engine_settings_never_change_an_eval_key(models):
    model_id = model_fingerprint(str(models / "a"))

    def keys(engine=None, **options):
        raw = raw_plan(models / "a")
        raw["evaluate"]["options"].update(options)
        if engine is not None:
            raw["backend"] = {"name": "hf", **engine}
        return [s.key for ms in plan_stages(plan_from_dict(raw), model_id) for s in ms.all()]

    assert keys({"batch_size": 1}) == keys() == keys({"batch_size": 3, "engine": "hf"})
    assert keys(max_new_tokens=5) != keys()


# -- the runner: recompute on changed content, and only what is missing -----------------------


def test_compare_recomputes_after_weights_overwritten_in_place(models, tmp_path):
    """The issue's case: same-size weights written over the model recompute every stage and
    match a fresh run of the new weights."""
    model = copy_model(models, "a", tmp_path / "model")
    run_dir = tmp_path / "run"
    first = run_plan(raw_plan(model), run_dir)
    old_rows = rows_of(run_dir)
    overwrite_in_place(model / WEIGHTS, models / "b" / WEIGHTS)
    runner = ComparisonRunner(plan_from_dict(raw_plan(model)), run_dir, progress=False)
    assert len(runner.pending()) == len([s for ms in first.graph for s in ms.all()])
    runner.run()
    run_plan(raw_plan(models / "b"), tmp_path / "fresh")
    assert rows_of(run_dir) == rows_of(tmp_path / "fresh") != old_rows


def test_compare_recomputes_after_rewritten_factor_file(models, tmp_path):
    factors = tmp_path / "factors.json"
    low, high = [1.0] * 4 + [2.0] * 4, [1.0] * 2 + [8.0] * 6
    factors.write_text(json.dumps({"long_factor": low, "target_length": 512}))
    raw = raw_plan(models / "a")
    raw["methods"] = [{"method": "longrope2", "factors": str(factors)}]
    run_plan(raw, tmp_path / "run")
    factors.write_text(json.dumps({"long_factor": high, "target_length": 512}))
    runner = ComparisonRunner(plan_from_dict(raw), tmp_path / "run", progress=False)
    assert {s.kind for s in runner.pending()} == {"scaling", "eval"}
    runner.run()
    run_plan(raw, tmp_path / "fresh")
    assert rows_of(tmp_path / "run") == rows_of(tmp_path / "fresh")


def test_compare_retrains_after_rewritten_training_data(models, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    text = (Path(json.__file__).read_text() * 3)[:6000]
    (data / "0.txt").write_text(text)
    raw = raw_plan(models / "a", lengths=[256], samples=1)
    raw["methods"] = [{"method": "pi", "train": {"steps": 1, "lr": 1e-2, "warmup_steps": 0,
                                                 "data": str(data)}}]
    run_plan(raw, tmp_path / "run")
    (data / "0.txt").write_text(text[::-1])  # same name and size, other text
    runner = ComparisonRunner(plan_from_dict(raw), tmp_path / "run", progress=False)
    assert {s.kind for s in runner.pending()} == {"train", "eval"}
    runner.run()
    run_plan(raw, tmp_path / "fresh")
    assert rows_of(tmp_path / "run") == rows_of(tmp_path / "fresh")


def test_eval_command_recomputes_after_weights_copied_with_old_times(models, tmp_path):
    """`eval`'s weight hash: `cp -p` of other weights over the model never reuses its rows."""
    model = copy_model(models, "a", tmp_path / "model")

    def run(out: Path, source: Path) -> list[tuple]:
        argv = ["eval", str(source), "--tasks", "passkey", "--lengths", "256", "--samples", "2",
                "--out", str(out), "--no-progress", "--set", "tasks.max_new_tokens=4"]
        assert main(argv) == 0
        return sorted((r["index"], r["prediction"], r["fingerprint"]) for r in read_rows(out))

    old = run(tmp_path / "out", model)
    copy_keeping_times(model / WEIGHTS, models / "b" / WEIGHTS)
    assert run(tmp_path / "out", model) == run(tmp_path / "fresh", models / "b") != old


def test_rewritten_haystack_folder_recomputes_rows_and_changes_the_eval_key(models, tmp_path,
                                                                             monkeypatch):
    from ropebench.backends.hf import HFBackend
    from ropebench.model.load import load_model
    from ropebench.run.evaluate import run_evaluation
    from ropebench.tasks.haystacks import get_haystack

    hay = tmp_path / "hay"
    hay.mkdir()
    text = Path(json.__file__).read_text()[:8000]
    (hay / "a.txt").write_text(text)
    raw = raw_plan(models / "a", tasks=["ppl"], options={"haystack": str(hay)})
    model_id = model_fingerprint(str(models / "a"))
    key = plan_stages(plan_from_dict(raw), model_id)[0].evals["ppl"].key
    model, tok = load_model(str(models / "a"))
    calls = []
    nll = HFBackend.nll
    monkeypatch.setattr(HFBackend, "nll", lambda self, *a, **k: calls.append(1) or nll(self, *a, **k))

    def evaluate(out):
        get_haystack.cache_clear()  # a new process would read the folder again
        run_evaluation(HFBackend(model, tok), method="none", tasks=["ppl"], lengths=[128],
                       samples=1, seed=0, out_dir=out, options={"haystack": str(hay)},
                       progress=False)
        return [(r["score"], r["fingerprint"]) for r in read_rows(out)]

    old = evaluate(tmp_path / "out")
    (hay / "a.txt").write_text(text[::-1])  # same name and size, other text
    assert plan_stages(plan_from_dict(raw), model_id)[0].evals["ppl"].key != key
    calls.clear()
    assert evaluate(tmp_path / "out") == evaluate(tmp_path / "fresh") != old
    assert len(calls) == 2  # the rerun measured again (then the fresh run)


def test_vllm_export_is_remade_when_the_source_weights_change(models, tmp_path):
    """The folder vLLM serves is re-exported (and its rows' identity changes) when the source
    model's weights are overwritten in place; unchanged, the export is reused."""
    from ropebench.backends.vllm import VLLMBackend, export_for_vllm
    from ropebench.methods import get_extender
    from ropebench.model.load import load_config_dict
    from ropebench.rope.spec import RopeSpec

    model = copy_model(models, "a", tmp_path / "model")
    scaling = get_extender("pi").rescale(RopeSpec.from_config(load_config_dict(str(model))), 512)
    export = export_for_vllm(str(model), scaling, tmp_path / "export")
    first = (export / WEIGHTS).read_bytes()
    identity = VLLMBackend(export, tokenizer=tiny_tokenizer()).identity
    stamp = (export / WEIGHTS).stat().st_mtime_ns
    export_for_vllm(str(model), scaling, tmp_path / "export")
    assert (export / WEIGHTS).stat().st_mtime_ns == stamp  # reused
    overwrite_in_place(model / WEIGHTS, models / "b" / WEIGHTS)
    export_for_vllm(str(model), scaling, tmp_path / "export")
    assert (export / WEIGHTS).read_bytes() != first
    assert VLLMBackend(export, tokenizer=tiny_tokenizer()).identity != identity


def test_rewritten_tokenizer_or_config_changes_every_stage_key(models, tmp_path):
    model = copy_model(models, "a", tmp_path / "model")
    plan = plan_from_dict(raw_plan(model))

    def keys():
        return {s.key for ms in plan_stages(plan, model_fingerprint(str(model))) for s in ms.all()}

    seen = [keys()]
    settings = json.loads((model / "tokenizer_config.json").read_text())
    settings["chat_template"] = "{{ messages[0]['content'] }}"
    (model / "tokenizer_config.json").write_text(json.dumps(settings))
    seen.append(keys())
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "rms_norm_eps": 1e-5}))
    seen.append(keys())
    (model / "README.md").write_text("notes")  # documentation is never read by a load
    seen.append(keys())
    assert not seen[0] & seen[1] and not seen[1] & seen[2] and seen[3] == seen[2]

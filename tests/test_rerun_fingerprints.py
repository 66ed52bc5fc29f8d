"""Re-running into an existing folder with any changed input gives the rows a fresh folder gives."""

from __future__ import annotations

import fcntl
import os

import pytest
from helpers import tiny_llama, tiny_tokenizer

from ropebench.backends.hf import HFBackend, HFOptions
from ropebench.cli.main import main
from ropebench.errors import RopebenchError
from ropebench.io import LOCK_FILE, read_jsonl
from ropebench.run.evaluate import REPLACED_FILE, read_rows, run_evaluation


@pytest.fixture(scope="module")
def model():
    return tiny_llama(window=512, seed=1)


def _rows(folder):
    rows = read_rows(folder)
    drop = ("seconds",)
    return sorted(({k: v for k, v in r.items() if k not in drop} for r in rows),
                  key=lambda r: (r["task"], r["length"], r["index"]))


def _eval(backend, out, **changes):
    kwargs = dict(method="none", tasks=["passkey"], lengths=[256], samples=2, seed=0,
                  out_dir=out, options={"max_new_tokens": 4}, progress=False)
    kwargs.update(changes)
    return run_evaluation(backend, **kwargs)


@pytest.mark.parametrize("change", [
    {"seed": 7},
    {"options": {"max_new_tokens": 6}},
    {"identity": {"scaling": {"method": "pi", "factor": 2.0}}},
])
def test_changed_seed_options_or_settings_recompute(model, tok, tmp_path, change, capsys):
    reused, fresh = tmp_path / "reused", tmp_path / "fresh"
    _eval(HFBackend(model, tok), reused)
    first = _rows(reused)
    _eval(HFBackend(model, tok), reused, **change)
    _eval(HFBackend(model, tok), fresh, **change)
    assert _rows(reused) == _rows(fresh)
    assert len(_rows(reused)) == len(first)
    assert "recomputing" in capsys.readouterr().err
    assert len(read_jsonl(reused / REPLACED_FILE)) == len(first)  # the old rows are kept aside


def test_changed_model_weights_recompute(model, tok, tmp_path):
    other = tiny_llama(window=512, seed=5)
    reused, fresh = tmp_path / "reused", tmp_path / "fresh"
    _eval(HFBackend(model, tok, identity={"model": "m"}), reused)
    _eval(HFBackend(other, tok, identity={"model": "m"}), reused)  # same name, other weights
    _eval(HFBackend(other, tok, identity={"model": "m"}), fresh)
    assert _rows(reused) == _rows(fresh)


def test_unchanged_inputs_reuse_rows(model, tok, tmp_path):
    _eval(HFBackend(model, tok), tmp_path)
    stamp = (tmp_path / "rows.jsonl").read_text()
    _eval(HFBackend(model, tok, options=HFOptions(batch_size=1, engine="hf")), tmp_path,
          options={"max_new_tokens": 4})
    assert (tmp_path / "rows.jsonl").read_text() == stamp  # speed-only options change nothing


def test_changed_tokenizer_template_changes_the_fingerprint(model, tok):
    templated = tiny_tokenizer()
    templated.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert HFBackend(model, tok).identity != HFBackend(model, templated).identity


def test_second_writer_stops_with_a_clear_message(model, tok, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    fd = os.open(tmp_path / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242")
    fcntl.flock(fd, fcntl.LOCK_EX)  # another writer holds the folder
    try:
        with pytest.raises(RopebenchError, match="another ropebench process .pid 4242. is writing"):
            _eval(HFBackend(model, tok), tmp_path)
    finally:
        os.close(fd)
    _eval(HFBackend(model, tok), tmp_path)  # released: the run goes ahead
    assert len(read_rows(tmp_path)) == 2


def test_eval_command_rerun_with_other_settings_and_model(model, tok, tmp_path):
    model_dir, other_dir = tmp_path / "model", tmp_path / "other"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    tiny_llama(window=512, seed=9).save_pretrained(other_dir)
    tok.save_pretrained(other_dir)

    def run(out, source, *extra):
        argv = ["eval", str(source), "--tasks", "passkey", "--lengths", "256", "--samples", "1",
                "--out", str(out), "--no-progress", "--set", "tasks.max_new_tokens=4",
                "--label", "x", *extra]
        assert main(argv) == 0
        return _rows(out)

    yarn = ("--method", "yarn", "--target-length", "1024")
    run(tmp_path / "a", model_dir, *yarn)
    changed = run(tmp_path / "a", model_dir, *yarn, "--set", "params.beta_fast=16")
    assert changed == run(tmp_path / "b", model_dir, *yarn, "--set", "params.beta_fast=16")
    moved = run(tmp_path / "a", other_dir, *yarn, "--set", "params.beta_fast=16")
    assert moved == run(tmp_path / "c", other_dir, *yarn, "--set", "params.beta_fast=16")
    assert [r["fingerprint"] for r in changed] != [r["fingerprint"] for r in moved]


def test_an_interrupted_eval_still_writes_its_summary(model, tok, tmp_path):
    backend = HFBackend(model, tok)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    backend.nll = interrupted  # perplexity runs after passkey and is cut short
    with pytest.raises(KeyboardInterrupt):
        _eval(backend, tmp_path, tasks=["passkey", "ppl"])
    summary = (tmp_path / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("method,task,length,n,score") and summary[1].startswith("none,passkey,256,2")


def test_changed_target_length_recomputes(model, tok, tmp_path):
    from ropebench.methods import get_extender
    from ropebench.model.patch import apply_scaling, spec_of

    def run(out, target):
        patched = tiny_llama(window=512, seed=1)
        scaling = get_extender("yarn").rescale(spec_of(patched), target)
        apply_scaling(patched, scaling)
        _eval(HFBackend(patched, tok), out, method="yarn",
              identity={"scaling": scaling.to_dict()})
        return _rows(out)

    run(tmp_path / "a", 1024)
    assert run(tmp_path / "a", 2048) == run(tmp_path / "b", 2048)


def test_a_searched_scalings_identity_is_its_factors_not_its_search_time():
    """Rows and training checkpoints depend on a scaling's factors, not on how long the search
    that found them ran: the same factors from a re-run search keep their rows."""
    from ropebench.rope.scaling import RopeScaling

    record = {"fitness": "needle_ppl", "best_fitness": 2.0, "fitness_history": [3.0, 2.0],
              "evaluations": 8, "seconds": 38.26, "baseline_fitness": {"yarn": 2.5},
              "settings": {"population": 2}}
    saved = {"method": "longrope2", "target_length": 4096, "original_length": 512,
             "long_factor": [1.0, 2.0], "attention_factor": 1.2, "rope_parameters": {},
             "critical_index": 1, "provenance": "searched", "extra": {"n_hat": 0, **record}}
    first = RopeScaling.from_dict(saved)
    again = RopeScaling.from_dict({**saved, "extra": {**saved["extra"], "seconds": 39.11}})
    other = RopeScaling.from_dict({**saved, "long_factor": [1.0, 2.5]})
    assert first.search is not None and first.search.seconds == 38.26
    assert first.to_dict() != again.to_dict()  # the saved record keeps the search's time ...
    assert first.identity() == again.identity()  # ... which no result depends on
    assert first.identity() != other.identity()
    assert "seconds" not in first.identity()["extra"]

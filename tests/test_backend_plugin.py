"""A backend added from outside the package serves `eval` and a `compare` plan through the CLI.

The toy engine below answers every prompt with the last number written in it and gives every
token the NLL of a uniform guess over the vocabulary: enough to tell its rows from the HF
backend's, and to show that a plan's search and training stages run on HF, as the plan says,
while its evaluation stages run on the chosen backend. Nothing in `ropebench/` is touched:
docs/architecture.md says adding a backend is one module (or plugin), and this file is that
module.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from helpers import tiny_tokenizer

from ropebench.backends.base import BACKENDS, Backend, Completion, ModelSource, Place, SpanNLL
from ropebench.cli.main import main
from ropebench.run.evaluate import read_rows
from ropebench.settings import setting


@dataclass
class ToyOptions:
    batch_size: int = setting(2, min=1)
    answer: str = setting("last_number", choices=("last_number", "nothing"))

    speed_only: ClassVar[tuple[str, ...]] = ("batch_size",)


class ToyBackend(Backend):
    name = "toy"
    options_class = ToyOptions
    answered: ClassVar[list[str]] = []  # every answer given, for the tests to compare with rows

    def __init__(self, tokenizer, source: ModelSource, options: ToyOptions, place: Place) -> None:
        self.tokenizer, self.source, self.options = tokenizer, source, options
        self.rank, self.world_size = place.rank, place.world_size

    @classmethod
    def create(cls, source: ModelSource, options: ToyOptions, place: Place) -> ToyBackend:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(source.model), source, options, place)

    @property
    def batch_size(self) -> int:  # type: ignore[override]
        return self.options.batch_size

    @property
    def identity(self) -> dict[str, Any]:
        scaling = self.source.scaling
        return {"model": self.source.model, "toy_answer": self.options.answer,
                "rope": None if scaling is None else scaling.to_dict()}

    @property
    def max_length(self) -> int:
        config = json.loads((Path(self.source.model) / "config.json").read_text())
        return int(config["max_position_embeddings"])

    def generate(self, prompts, max_new_tokens, *, stop_at_newline=False, settled=None, **options):
        answers = []
        for ids in prompts:
            numbers = re.findall(r"\d+", self.tokenizer.decode(ids))
            text = numbers[-1] if numbers and self.options.answer == "last_number" else ""
            answers.append(Completion(text, len(ids), 0.0))
            self.answered.append(text)
        return answers

    def nll(self, input_ids, first_target, last_target=None) -> SpanNLL:
        count = (last_target or len(input_ids)) - first_target
        per_token = math.log(len(self.tokenizer))
        return SpanNLL(per_token * count, count, per_token)


@pytest.fixture
def toy_registered(monkeypatch):
    BACKENDS.names()  # the built-ins first, so the toy joins them rather than replacing them
    monkeypatch.setitem(BACKENDS._builtins, "toy", ToyBackend)


def test_eval_runs_on_a_plugin_backend_through_the_cli(toy_registered, model_dir128, tmp_path):
    ToyBackend.answered.clear()
    out = tmp_path / "out"
    argv = ["eval", str(model_dir128), "--backend", "toy", "--tasks", "passkey,ppl",
            "--lengths", "256", "--samples", "3", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    rows = read_rows(out)
    passkey = [r for r in rows if r["task"] == "passkey"]
    assert len(passkey) == 3 and len([r for r in rows if r["task"] == "ppl"]) == 1
    # The rows hold exactly what the toy answered: the last number of each prompt.
    assert sorted(r["prediction"] for r in passkey) == sorted(ToyBackend.answered)
    assert all(r["prediction"].isdigit() for r in passkey)
    ppl = next(r for r in rows if r["task"] == "ppl")
    assert ppl["score"] == pytest.approx(len(tiny_tokenizer()), rel=1e-6)  # exp(log V) = V


def test_a_plugin_backends_bad_option_is_one_line(toy_registered, model_dir128, tmp_path, capsys,
                                                   no_weights):
    argv = ["eval", str(model_dir128), "--backend", "toy", "--tasks", "passkey", "--lengths", "128",
            "--out", str(tmp_path / "out"), "--set", "backend.answer=everything"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "answer" in err and "last_number" in err


def plan_file(tmp_path: Path, model_dir128: Path, backend: Any) -> Path:
    plan = {
        "name": "toy", "model": str(model_dir128), "target_length": 512,
        "methods": ["none", {"method": "pi", "train": {"steps": 2, "warmup_steps": 0,
                                                       "save_every": 0}}],
        "evaluate": {"tasks": ["passkey"], "lengths": [256, 384], "samples": 2},
        "backend": backend,
    }
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def test_a_compare_plan_evaluates_on_the_plans_backend_and_trains_on_hf(
        toy_registered, model_dir128, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["compare", str(plan_file(tmp_path, model_dir128, {"name": "toy"})), "--out", str(run)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "train stages run on the hf backend" in err
    manifest = json.loads((run / "manifest.json").read_text())
    trained = next(m for m in manifest["methods"] if m["label"] == "pi")
    assert (run / trained["train"]["path"] / "model" / "config.json").is_file()  # HF trained it
    for method in manifest["methods"]:
        rows = read_rows(run / method["evals"]["passkey"]["path"])
        assert sorted((r["length"], r["index"]) for r in rows) == [(256, 0), (256, 1),
                                                                    (384, 0), (384, 1)]
        assert all(r["prediction"].isdigit() for r in rows)  # the toy's answers, not a model's
    # The toy's options, less its speed-only ones, are part of the evaluation's key.
    assert main([*argv, "--set", "backend.batch_size=1", "--dry-run"]) == 0
    assert "0 to run" in capsys.readouterr().out
    assert main([*argv, "--set", "backend.answer=nothing", "--dry-run"]) == 0
    assert "2 to run" in capsys.readouterr().out  # the passkey stage of each method


@pytest.mark.parametrize("backend, wrong", [
    ({"name": "toy", "answr": "x"}, "did you mean answer"),
    ({"name": "toi"}, "did you mean toy"),
    ({"name": "toy", "batch_size": "two"}, "integer"),
])
def test_a_plans_bad_backend_section_is_one_line(toy_registered, model_dir128, tmp_path, capsys,
                                                 no_weights, backend, wrong):
    argv = ["compare", str(plan_file(tmp_path, model_dir128, backend)), "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and wrong in err and "backend" in err

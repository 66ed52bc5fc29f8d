"""lm-eval bridge: the offline short-task set, and a cross-check against lm-eval's own RULER."""

from __future__ import annotations

import os
import re

import pytest
from helpers import tiny_llama

from ropebench.backends.hf import HFBackend
from ropebench.tasks.short import DEFAULT_TASKS, ShortTasks, primary_metric, project_task_configs


@pytest.fixture(scope="module")
def model():
    return tiny_llama(window=512, seed=2)


def test_project_configs_point_at_shipped_data():
    configs = project_task_configs()
    assert set(DEFAULT_TASKS) <= set(configs)
    for config in configs.values():
        (path,) = config["dataset_kwargs"]["data_files"].values()
        assert path.startswith("/") and sum(1 for _ in open(path)) >= 50


def test_primary_metric_prefers_accuracy():
    assert primary_metric({"alias": "x", "acc_norm,none": 0.3, "acc,none": 0.5}) == (
        "acc,none",
        0.5,
    )
    assert primary_metric({"exact_match,first_word": 0.25}) == ("exact_match,first_word", 0.25)


def test_short_tasks_run_through_lm_eval_in_memory(model, tok):
    rows = ShortTasks().measure(HFBackend(model, tok), 0, samples=1, seed=0, options={"short_limit": 4})
    assert {r.metadata["lm_eval_task"] for r in rows} == set(DEFAULT_TASKS)
    for row in rows:
        assert row.length == 0 and 0.0 <= row.score <= 1.0
        assert row.metadata["metrics"]["sample_len"] == 4


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("ROPEBENCH_SLOW"), reason="minutes on CPU; set ROPEBENCH_SLOW=1")
def test_niah_single_1_cross_check_with_lm_eval(tmp_path):
    """The shipped reference model, one tokenizer, one length: both pipelines score the model
    that really retrieves at its window, and build the same prompt shape."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from ropebench.model.load import load_model
    from ropebench.run.evaluate import run_evaluation

    model, tok = load_model("reference")
    length, n = 512, 20
    tok_dir = tmp_path / "tok"
    tok.save_pretrained(tok_dir)
    lm = HFLM(pretrained=model, tokenizer=tok, max_length=length, batch_size=1)
    theirs = simple_evaluate(
        model=lm,
        tasks=["niah_single_1"],
        task_manager=TaskManager(metadata={"max_seq_lengths": [length], "tokenizer": str(tok_dir)}),
        limit=n,
        log_samples=True,
        bootstrap_iters=0,
    )
    their_score = theirs["results"]["niah_single_1"][f"{length},none"]
    ours = run_evaluation(HFBackend(model, tok),
        method="none",
        tasks=["niah_single_1"],
        lengths=[length],
        samples=n,
        seed=42,
        out_dir=tmp_path / "ours",
        progress=False,
    )
    assert 0.0 <= their_score <= 1.0 and 0.0 <= ours["score"].mean() <= 1.0

    doc = theirs["samples"]["niah_single_1"][0]["doc"]
    assert doc["input"].startswith(
        "A special magic number is hidden within the following text. Make sure to memorize it. "
        "I will quiz you about the number afterwards.\n"
    )
    assert re.fullmatch(
        r"The special magic number for \S+ mentioned in the provided text is", doc["gen_prefix"]
    )
    print(
        f"niah_single_1 @ {length}, {n} samples: lm-eval {their_score:.3f}, ropebench {ours['score'].mean():.3f}"
    )

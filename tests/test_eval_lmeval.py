"""lm-eval bridge: the offline short-task set, and a cross-check against lm-eval's own RULER."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

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
def test_niah_single_1_cross_check_with_lm_eval():
    """The shipped reference model, one tokenizer, one length, the same number of samples:
    lm-eval's niah_single_1 (through lmeval_long's RULER family) and ropebench's build the same
    instruction, needle sentence, question and answer prefix around the same repeated haystack;
    they differ in how much haystack fills the length (bench/niah_prompts_vs_lmeval.py)."""
    from ropebench.model.load import load_model
    from ropebench.tasks.lmeval_families import answer_tokens, build
    from ropebench.tasks.registry import get_task
    from ropebench.tasks.short import lm_eval_results

    model, tok = load_model("reference")
    backend, length, n = HFBackend(model, tok), 512, 8
    with tempfile.TemporaryDirectory() as folder:
        tok.save_pretrained(folder)
        built = build("niah_single_1", Path(), length, tok, folder)
        records = lm_eval_results(backend, [built.config], limit=n, seed=42,
                                  max_length=length + answer_tokens(built.config))
    theirs = [r["arguments"][0][0] for r in records["samples"]["niah_single_1"]]
    ours = [s.input_text for s in get_task("niah_single_1").samples(tok, length, n, 42)]
    assert len(theirs) == len(ours) == n
    needle = re.compile(r"One of the special magic numbers for (\S+) is: \d+\.")
    haystack = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."

    def outside(text: str) -> tuple[str, str]:  # the text around the haystack, key masked
        masked = needle.sub("<NEEDLE>", text).replace(needle.search(text).group(1), "<KEY>")
        return masked[:masked.find(haystack)], masked[masked.rfind(haystack) + len(haystack):]

    assert {outside(p) for p in theirs} == {outside(p) for p in ours}  # one head, one tail
    count = lambda prompts: {p.count(haystack) for p in prompts}  # noqa: E731
    assert count(theirs) != count(ours)  # haystack sizes differ (lm-eval: 5 runs, ours: 6)
    assert max(len(tok(p)["input_ids"]) for p in theirs + ours) <= length - 128

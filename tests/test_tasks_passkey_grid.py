"""Passkey retrieval and the needle-in-a-haystack grid."""

from __future__ import annotations

import pytest

from ropebench.errors import RopebenchError
from ropebench.tasks import get_task
from ropebench.tasks.grid import grid_depths
from ropebench.tasks.passkey import first_integer
from ropebench.tasks.prompting import count_tokens


def test_passkey_prompt_layout_and_budget(tok):
    samples = get_task("passkey").samples(tok, 1024, 4, 0)
    for sample in samples:
        key = sample.references[0]
        assert 1 <= int(key) <= 50000
        lines = sample.input_text.split("\n")  # the cue is the answer prefix
        assert lines[0].startswith(
            "There is an important info hidden inside a lot of irrelevant text."
        )
        assert lines[2] == f"The pass key is {key}. Remember it. {key} is the pass key."
        assert lines[-1] == "What is the pass key? The pass key is"
        assert count_tokens(tok, sample.input_text) + sample.max_new_tokens <= 1024
    assert len({s.metadata["depth"] for s in samples}) > 1


def test_passkey_scores_the_first_integer(tok):
    (sample,) = get_task("passkey").samples(tok, 512, 1, 0)
    key = sample.references[0]
    task = get_task("passkey")
    assert task.score(sample, f" {key}. The grass") == 1.0
    assert task.score(sample, f" 1{key}") == 0.0
    assert task.score(sample, f" 7 then {key}") == 0.0
    assert task.score(sample, "") == 0.0
    assert first_integer("no digits") is None


def test_grid_depths():
    assert grid_depths(5) == [0, 25, 50, 75, 100]
    sig = grid_depths(7, "sigmoid")
    assert sig[0] == 0 and sig[-1] == 100 and sig[3] == 50
    assert sig[1] - sig[0] < sig[3] - sig[2]  # denser near the ends
    with pytest.raises(RopebenchError):
        grid_depths(3, "cubic")


def test_grid_cells_share_the_needle_and_move_it(tok):
    samples = get_task("niah").samples(tok, 1024, 2, 0, depths=[0, 50, 100], haystack="pydoc")
    assert [s.index for s in samples] == list(range(6))
    assert [s.metadata["depth"] for s in samples] == [0, 0, 50, 50, 100, 100]
    same_k = samples[0::2]
    assert len({s.references[0] for s in same_k}) == 1
    value = same_k[0].references[0]
    offsets = [s.prompt.index(value) / len(s.prompt) for s in same_k]
    assert offsets[0] < offsets[1] < offsets[2]
    for sample in samples:
        needle = f"One of the special magic numbers for {sample.metadata['query']} is: {sample.references[0]}."
        before = sample.prompt[: sample.prompt.index(needle)].rstrip(" ")
        if sample.metadata["depth"] == 50:  # mid-text, the needle follows a sentence end
            assert before[-1] in ".!?"
        if sample.metadata["depth"] == 0:  # first, right after the instruction line
            assert before.endswith("afterwards.\n")
        assert count_tokens(tok, sample.input_text) + sample.max_new_tokens <= 1024

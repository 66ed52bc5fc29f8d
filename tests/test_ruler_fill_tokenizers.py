"""RULER's fill on tokenizers other than the shipped one (benchmarks.md section 6).

Two byte-level BPE tokenizers of different vocabulary sizes are trained here on stdlib text: a
small one (many tokens per word) and a larger one (few). Every RULER task is drawn at two lengths with the reference fill;
each sample must fit the length and lie within the reference algorithm's own distance of it: the
search ends at most one step-down unit short of the budget on a fresh draw, and a sample steps
down one whole unit per overflowing draw, so a sample lies within two units of the budget and the
mean within one (plus 2% for the draws' spread). The unit sizes are the reference's (500 essay
words, 25 noise or needle lines (5 below 4K), 10 vt lines (5 below 4K), 10 cwe words, length // 32
fwe words, 10 qa documents).
"""

from __future__ import annotations

import json
import pydoc_data.topics
import random

import pytest

from ropebench.tasks import get_task
from ropebench.tasks.haystacks import NOISE_LINE
from ropebench.tasks.ruler import templates

LENGTHS = (2048, 8192)
SAMPLES = 5
ESSAY = ("niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multivalue", "niah_multiquery")
LINES = ("niah_single_1", "niah_multikey_2", "niah_multikey_3")
TASKS = (*LINES, *ESSAY, "vt", "cwe", "fwe", "qa_1", "qa_2")
TEXTS = list(pydoc_data.topics.topics.values())


def step_units(name: str, length: int) -> int:
    """The reference's step-down unit for a task at a length."""
    if name in ESSAY:
        return 500
    if name in LINES:
        return 25 if length >= 4096 else 5
    if name == "vt":
        return 10 if length >= 4096 else 5
    if name == "fwe":
        return length // 32
    return 10  # cwe words, qa documents


@pytest.fixture(scope="module", params=[512, 8000], ids=lambda v: f"vocab{v}")
def tokenizer(request):
    from ropebench.reference.tokenizer import train_tokenizer

    # Both also see the benchmark's own text, as a production tokenizer's vocabulary covers its
    # words: a noise line costs ~24 tokens with the larger vocabulary, ~48 with the small one.
    benchmark_text = [NOISE_LINE] * 50 + [
        value for value in vars(templates).values() if isinstance(value, str)] * 20
    return train_tokenizer(TEXTS + benchmark_text, vocab_size=request.param)


def paragraphs(rng: random.Random, count: int, words: int = 60) -> list[str]:
    """Paragraphs of stdlib documentation text, `words` words each."""
    pool = " ".join(TEXTS).split()
    starts = rng.sample(range(len(pool) - words), count)
    return [" ".join(pool[s : s + words]) for s in starts]


@pytest.fixture(scope="module")
def qa_files(tmp_path_factory):
    """SQuAD v2 and HotpotQA files in their real formats, large enough to fill 8K tokens."""
    rng = random.Random(0)
    folder = tmp_path_factory.mktemp("qa")
    squad = {"version": "v2.0", "data": []}
    for a in range(60):
        article = {"title": f"Article {a}", "paragraphs": []}
        for p, text in enumerate(paragraphs(rng, 4)):
            answer = text.split()[7]
            article["paragraphs"].append({"context": text, "qas": [{
                "question": f"Which word follows the seventh of paragraph {a}.{p}?", "id": f"{a}.{p}",
                "answers": [{"text": answer, "answer_start": text.index(answer)}],
                "is_impossible": False}]})
        squad["data"].append(article)
    hotpot = []
    for q in range(30):
        texts = paragraphs(rng, 10, 40)
        hotpot.append({"_id": str(q), "question": f"Question {q}?", "answer": texts[0].split()[3],
                       "type": "bridge", "level": "hard",
                       "supporting_facts": [[f"T{q}.0", 0], [f"T{q}.1", 0]],
                       "context": [[f"T{q}.{i}", [t]] for i, t in enumerate(texts)]})
    (folder / "squad.json").write_text(json.dumps(squad))
    (folder / "hotpot.json").write_text(json.dumps(hotpot))
    return {"qa_1": {"squad_path": str(folder / "squad.json")},
            "qa_2": {"hotpotqa_path": str(folder / "hotpot.json")}}


def options(name: str, qa_files) -> dict:
    if name.startswith("niah") and name not in LINES:
        return {"haystack": "pydoc"}
    return qa_files.get(name, {})


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("name", TASKS)
def test_reference_fill_lies_within_the_reference_bounds(tokenizer, qa_files, name, length):
    samples = get_task(name).samples(tokenizer, length, SAMPLES, 42, **options(name, qa_files))
    used = [s.metadata["input_tokens"] + s.max_new_tokens for s in samples]
    assert all(u <= length for u in used)
    # Tokens per haystack unit, bounded above (the prompt's fixed text is counted in).
    rate = max(s.metadata["input_tokens"] / s.metadata["units"] for s in samples)
    unit = step_units(name, length) * rate
    assert all(u >= length - 2 * unit for u in used), (used, unit)
    assert sum(used) / len(used) >= length - unit - 0.02 * length, (used, unit)


@pytest.mark.parametrize("length", LENGTHS)
def test_vt_fills_at_least_nine_tenths(tokenizer, length):
    """The vt search estimates tokens per line from the task text alone and counts the one-shot
    example as a constant (NVIDIA/RULER variable_tracking.py): with the example in the estimate,
    the larger vocabulary filled 0.80 of 2048 and 0.90 of 8192."""
    samples = get_task("vt").samples(tokenizer, length, 20, 42)
    used = [s.metadata["input_tokens"] + s.max_new_tokens for s in samples]
    assert all(0.9 * length <= u <= length for u in used), used

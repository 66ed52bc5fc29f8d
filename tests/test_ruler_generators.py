"""RULER sample generators: budget, answers, templates, determinism."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from helpers import tiny_tokenizer

from ropebench.errors import RopebenchError
from ropebench.run.evaluate import task_options
from ropebench.tasks import get_task
from ropebench.tasks.haystacks import NOISE_LINE
from ropebench.tasks.prompting import count_tokens, largest_fitting
from ropebench.tasks.ruler.niah import DEPTHS, insert_at_depths, join_queries

FIXTURES = Path(__file__).parent / "fixtures"
LENGTH = 2048
# The test tokenizer spends many tokens per word, so essays come from pydoc and the vt example
# gets more room than RULER's 500 tokens.
OPTIONS = {"haystack": "pydoc", "example_length": 900, "fill": "tight"}
NIAH = [
    "niah_single_1",
    "niah_single_2",
    "niah_single_3",
    "niah_multikey_1",
    "niah_multikey_2",
    "niah_multikey_3",
    "niah_multivalue",
    "niah_multiquery",
]
OFFLINE = [*NIAH, "vt", "cwe", "fwe"]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def drawn(tok):
    return {name: get_task(name).samples(tok, LENGTH, 3, 42, **task_options(OPTIONS, name)) for name in OFFLINE}


@pytest.mark.parametrize("name", OFFLINE)
def test_within_budget_and_nearly_full(drawn, tok, name):
    for sample in drawn[name]:
        used = count_tokens(tok, sample.input_text) + sample.max_new_tokens
        assert used <= LENGTH
        assert used > 0.8 * LENGTH  # the haystack fills the budget


@pytest.mark.parametrize("name", [n for n in OFFLINE if n != "cwe"])
def test_every_reference_is_in_the_prompt(drawn, name):
    for sample in drawn[name]:
        assert all(ref in sample.prompt for ref in sample.references)


@pytest.mark.parametrize("name", OFFLINE)
def test_same_seed_same_samples_and_index_independent_of_n(tok, drawn, name):
    again = get_task(name).samples(tok, LENGTH, 2, 42, **task_options(OPTIONS, name))
    assert [s.prompt for s in again] == [s.prompt for s in drawn[name][:2]]
    other = get_task(name).samples(tok, LENGTH, 1, 7, **task_options(OPTIONS, name))
    assert other[0].prompt != drawn[name][0].prompt


def test_single_needle_template_is_rewritten(drawn):
    sample = drawn["niah_single_1"][0]
    key = sample.metadata["query"]
    assert sample.prompt.startswith(
        "A special magic number is hidden within the following text. Make sure to memorize it. "
        "I will quiz you about the number afterwards.\n"
    )
    assert sample.prompt.endswith(
        f"\nWhat is the special magic number for {key} mentioned in the provided text?"
    )
    assert (
        sample.answer_prefix
        == f" The special magic number for {key} mentioned in the provided text is"
    )
    assert sample.max_new_tokens == 128 and sample.metric == "all"
    assert re.fullmatch(r"\d{7}", sample.references[0])
    assert sample.answer == f" {sample.references[0]}."
    needle = f"One of the special magic numbers for {key} is: {sample.references[0]}."
    assert sample.prompt.count(needle) == 1


def test_noise_haystack_lines(drawn):
    lines = drawn["niah_single_1"][0].prompt.split("\n")[1:-1]
    assert Counter(lines).most_common(1)[0][0] == NOISE_LINE
    assert sum(line.startswith("One of the special magic") for line in lines) == 1


def test_multi_value_keeps_plural_template(drawn):
    sample = drawn["niah_multivalue"][0]
    assert sample.prompt.startswith("Some special magic numbers are hidden")
    assert "What are all the special magic numbers for" in sample.prompt
    assert len(sample.references) == 4 and sample.answer_prefix.endswith("are")


def test_multiquery_asks_four_keys(drawn):
    sample = drawn["niah_multiquery"][0]
    keys = sample.metadata["query"].split(", ")
    assert len(keys) == 4 and keys[-1].startswith("and ")
    assert len(sample.references) == 4


def test_needle_haystack_lines_are_all_needles(drawn):
    sample = drawn["niah_multikey_3"][0]
    lines = sample.prompt.split("\n")[1:-1]
    assert len(lines) > 5
    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    assert all(
        re.fullmatch(f"One of the special magic uuids for {uuid} is: {uuid}.", line)
        for line in lines
    )
    assert re.fullmatch(uuid, sample.references[0])


def test_essay_needles_sit_between_sentences():
    sentences = ["S1.", "S2.", "S3.", "S4."]
    assert insert_at_depths(sentences, ["N."], [50]) == "S1. S2. N. S3. S4."
    # As in RULER, a needle at depth 0 follows an empty chunk, hence the leading space.
    assert insert_at_depths(sentences, ["N."], [0]) == " N. S1. S2. S3. S4."
    assert insert_at_depths(sentences, ["A.", "B."], [100, 25]) == "S1. A. S2. S3. S4. B. "
    assert DEPTHS[:3] == (0, 3, 5) and DEPTHS[-1] == 100 and len(DEPTHS) == 40


def test_join_queries():
    assert join_queries(["a"]) == "a"
    assert join_queries(["a", "b", "c", "d"]) == "a, b, c, and d"


def test_vt_chain_in_order_with_one_shot_example(drawn):
    sample = drawn["vt"][0]
    names = sample.references
    assert len(names) == 5 and all(re.fullmatch(r"[A-Z]{5}", n) for n in names)
    value = sample.metadata["query"]
    task_part = sample.prompt[sample.prompt.rindex("Memorize and track") :]
    positions = [task_part.index(f"VAR {names[0]} = {value}")]
    positions += [task_part.index(f"VAR {names[i + 1]} = VAR {names[i]} ") for i in range(4)]
    assert positions == sorted(positions)
    # The one-shot example comes first, solved, with 3-letter names.
    example = sample.prompt[: sample.prompt.rindex("Memorize and track")]
    assert example.startswith("Memorize and track the chain(s) of variable assignment")
    assert re.search(r"they are:  [A-Z]{3} [A-Z]{3} [A-Z]{3} [A-Z]{3} [A-Z]{3}\n\n$", example)
    assert sample.answer_prefix == (
        " Answer: According to the chain(s) of variable assignment in the text above, 5 variables "
        f"are assigned the value {value}, they are: "
    )


def test_cwe_common_words_dominate(drawn):
    sample = drawn["cwe"][0]
    task_part = sample.prompt[sample.prompt.rindex("Below is a numbered list") :]
    words = Counter(re.findall(r"\d+\. (\S+)", task_part.split("\nQuestion:")[0]))
    top = {w for w, _ in words.most_common(10)}
    assert top == set(sample.references)
    assert all(words[w] == 6 for w in sample.references)  # below 4K: common x6, others x1
    assert (
        sample.prompt.count("Question: What are the 10 most common words in the above list?") == 2
    )


def test_fwe_zipf_counts(drawn):
    sample = drawn["fwe"][0]
    coded = sample.prompt.split("coded words. ", 1)[1].split("\nQuestion:")[0].split(" ")
    counts = Counter(coded)
    ranked = [w for w, _ in counts.most_common(4)]
    assert ranked[0] == "..." and ranked[1:4] == sample.references
    assert all(len(w) == 6 for w in sample.references)


@pytest.mark.parametrize(
    ("name", "option", "file"),
    [
        ("qa_1", "squad_path", "squad_dev_tiny.json"),
        ("qa_2", "hotpotqa_path", "hotpot_dev_distractor_tiny.json"),
    ],
)
def test_qa_from_local_files(tok, name, option, file):
    samples = get_task(name).samples(tok, 1024, 3, 42, **{option: str(FIXTURES / file)})
    first = samples[0]
    assert first.metric == "part" and first.answer_prefix == " Answer:"
    assert first.prompt.startswith("Answer the question based on the given documents.")
    assert "Document 1:\n" in first.prompt and first.prompt.endswith(
        f"Question: {first.prompt.split('Question: ')[-1]}"
    )
    if name == "qa_1":
        assert first.references == ["Robert Stevenson"]  # the impossible question is skipped
        assert samples[1].references == ["1998", "in 1998"]
        assert "Robert Stevenson" in first.prompt
    for sample in samples:
        assert count_tokens(tok, sample.input_text) + 32 <= 1024


def test_qa_missing_file_fails_clearly(tok):
    with pytest.raises(RopebenchError, match="does not exist"):
        get_task("qa_1").samples(tok, 1024, 1, 0, squad_path="/no/such/file.json")


def test_too_short_length_fails_clearly(tok):
    with pytest.raises(RopebenchError, match="does not fit"):
        get_task("niah_single_1").samples(tok, 150, 1, 0)


def test_chat_template_is_inside_the_budget(tok):
    chat_tok = tiny_tokenizer()
    chat_tok.chat_template = "<|user|>{{ messages[0]['content'] }}<|assistant|>"
    (sample,) = get_task("niah_single_1").samples(chat_tok, 1024, 1, 0)
    assert sample.prompt.startswith("<|user|>A special magic number") and sample.prompt.endswith(
        "<|assistant|>"
    )
    assert count_tokens(chat_tok, sample.input_text) + 128 <= 1024
    (plain,) = get_task("niah_single_1").samples(chat_tok, 1024, 1, 0, chat=False)
    assert plain.prompt.startswith("A special magic number")


def test_largest_fitting_is_exact():
    for limit in (1, 2, 7, 100, 1000):
        assert largest_fitting(lambda u, limit=limit: u <= limit, 1, 5000) == limit
    assert largest_fitting(lambda u: True, 1, 37) == 37


def test_training_style_calls_are_fast(tok):
    """The reference model's data pipeline draws single samples with fresh seeds."""
    import time

    task = get_task("niah_single_2")
    task.samples(tok, 512, 1, 0, haystack="pydoc", max_new_tokens=0, fill="tight")  # fit once
    start = time.perf_counter()
    for seed in range(100):
        task.samples(tok, 512, 1, seed, haystack="pydoc", max_new_tokens=0, fill="tight")
    assert time.perf_counter() - start < 5  # well over a thousand samples a minute


# --- the reference fill (benchmarks.md section 6), with the shipped tokenizer and the essays ---

ESSAYS = Path(__file__).resolve().parents[2] / "shared" / "data" / "paul_graham_essays"
CHECKPOINT = Path(__file__).resolve().parents[1] / "ropebench" / "reference" / "checkpoint"


@pytest.fixture(scope="module")
def shipped_tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(CHECKPOINT))


def mean_fill(samples) -> float:
    return sum(s.metadata["input_tokens"] + s.max_new_tokens for s in samples) / len(samples)


@pytest.mark.skipif(not ESSAYS.is_dir(), reason="the essay haystack is not available")
@pytest.mark.parametrize(("name", "length", "reference", "tight"), [
    ("niah_single_2", 2048, 1222, 2040),
    ("niah_multivalue", 2048, 1024, 2038),
    ("niah_multiquery", 4096, 3437, 4079),
])
def test_fill_matches_the_measured_reference(shipped_tok, name, length, reference, tight):
    """Mean tokens per sample of 10 samples, seed 42 (the spec's measurement)."""
    task = get_task(name)
    opts = {"haystack": str(ESSAYS)}
    got = mean_fill(task.samples(shipped_tok, length, 10, 42, fill="tight", **opts))
    assert abs(got - tight) <= 0.02 * tight
    got = mean_fill(task.samples(shipped_tok, length, 10, 42, **opts))  # fill: reference
    if reference is not None:
        # The sentence split (a regex, not nltk's punkt) moves a needle by a sentence now and
        # then, which can tip one search probe: 6% leaves room for that.
        assert abs(got - reference) <= 0.06 * reference


@pytest.mark.parametrize(("length", "reference"), [(2048, 2025), (4096, 4075)])
def test_vt_fill_matches_the_measured_reference(shipped_tok, length, reference):
    got = mean_fill(get_task("vt").samples(shipped_tok, length, 10, 42))
    assert abs(got - reference) <= 0.02 * reference


def test_vt_reference_layout_one_statement_per_line_and_one_reused_example(shipped_tok):
    samples = get_task("vt").samples(shipped_tok, 2048, 3, 42)
    examples = []
    for sample in samples:
        example, task_part = sample.prompt.split("\n\nMemorize and track", 1)
        context = task_part.split("\n\n", 1)[1].split("\nQuestion:")[0]
        lines = context.split("\n")
        statements = [line for line in lines if line.startswith("VAR ")]
        assert len(statements) == 5 and all(not line.startswith(" ") for line in lines)
        assert {line for line in lines if not line.startswith("VAR ")} == {NOISE_LINE}
        examples.append(example)
    # One example structure: the same lines in the same places, names and value re-drawn.
    shapes = {re.sub(r"VAR [A-Z]{3} = (VAR [A-Z]{3}|\d{5})", "VAR", e.split("Question:")[0])
              for e in examples}
    assert len(shapes) == 1 and len(set(examples)) == 3
    # Fitted to 500 tokens with no generated tokens counted (the reference's example).
    assert count_tokens(shipped_tok, examples[0], bos=True) <= 500
    assert count_tokens(shipped_tok, examples[0], bos=True) > 450


def test_vt_2024_layout_joins_lines(shipped_tok):
    sample = get_task("vt").samples(shipped_tok, 2048, 1, 42, layout="2024", example="fresh")[0]
    assert re.search(r"VAR [A-Z]{5} = VAR [A-Z]{5}  The grass", sample.prompt)


def test_reference_fill_steps_down_whole_units(tok):
    samples = get_task("niah_single_1").samples(tok, 2048, 6, 42)
    fitted = max(s.metadata["units"] for s in samples)
    assert all((fitted - s.metadata["units"]) % 5 == 0 for s in samples)  # 5 lines below 4K
    assert all(s.metadata["fill"] == "reference" for s in samples)
    for s in samples:
        assert count_tokens(tok, s.input_text, bos=True) + s.max_new_tokens <= 2048


def test_unknown_fill_is_refused(tok):
    with pytest.raises(RopebenchError, match="fill"):
        get_task("niah_single_1").samples(tok, 2048, 1, 42, fill="loose")


def test_qa_gold_slot_is_fixed_by_the_seed():
    """RULER shuffles with Random(seed): the gold paragraph is "Document {slot}" for the spec's slot."""
    import random

    from ropebench.tasks.ruler.qa import QADataset, Question, qa_draft

    data = QADataset((Question("q?", ("a",), gold=(0,)),), tuple(f"doc {i}" for i in range(300)))
    for n, slot in [(25, 23), (50, 20), (100, 71), (200, 56)]:
        for draw in range(3):
            draft = qa_draft(data, n, random.Random(draw), 0, shuffle_seed=42)
            assert draft.metadata["gold_documents"] == [slot]
    slots = {qa_draft(data, 50, random.Random(d), 0).metadata["gold_documents"][0] for d in range(20)}
    assert len(slots) > 5  # gold: uniform

"""Harder retrieval: `mrcr` (after OpenAI-MRCR) and the non-literal needles (after NoLiMa)."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

import pytest

from ropebench.tasks import get_task
from ropebench.tasks.mrcr import FORMS, TOPICS, mrcr_score, ordinal
from ropebench.tasks.nolima import BRIDGE, NEEDLE
from ropebench.tasks.prompting import count_tokens, wrap
from ropebench.tasks.ruler.aggregate import relative_effective_length

LENGTHS = (1024, 2048)
STOPWORDS = {"a", "an", "the", "is", "are", "for", "in", "to", "of", "what", "was", "it", "i",
             "will", "you", "about", "make", "sure", "mentioned", "provided", "text", "following",
             "within", "hidden", "afterwards", "quiz", "memorize"}


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOPWORDS}


# ---------------------------------------------------------------- mrcr scoring, by hand

def test_mrcr_score_needs_the_prefix():
    answer = "Xy12AbCd90roses are red"
    assert mrcr_score("roses are red", answer, "Xy12AbCd90") == 0.0  # no prefix: 0
    assert mrcr_score("Sure! Xy12AbCd90roses are red", answer, "Xy12AbCd90") == 0.0
    assert mrcr_score("xy12abcd90roses are red", answer, "Xy12AbCd90") == 0.0  # case counts
    assert mrcr_score("Xy12AbCd90roses are red", answer, "Xy12AbCd90") == 1.0
    assert mrcr_score("  Xy12AbCd90roses are red", answer, "Xy12AbCd90") == 1.0


def test_mrcr_score_is_the_similarity_ratio_after_the_prefix():
    # "abcd" vs "bcde": 3 matching characters of 8 -> 2 * 3 / 8
    assert mrcr_score("PPabcd", "PPbcde", "PP") == pytest.approx(0.75)
    # "roses are red" (13) vs "roses are blue" (14): "roses are " + "e" match -> 2 * 11 / 27
    assert mrcr_score("Kroses are red", "Kroses are blue", "K") == pytest.approx(22 / 27)
    assert mrcr_score("K", "Kroses", "K") == 0.0  # only the prefix: nothing of the answer
    assert SequenceMatcher(None, "roses are red", "roses are blue").ratio() == pytest.approx(22 / 27)


def test_ordinals():
    assert [ordinal(k) for k in (1, 2, 3, 4, 11, 12, 13, 21, 22)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd"]


# ---------------------------------------------------------------- mrcr generator

@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("needles", [2, 4])
def test_mrcr_fits_and_asks_for_one_of_the_identical_requests(tok, length, needles):
    samples = get_task("mrcr").samples(tok, length, 3, 42, needles=needles)
    for sample in samples:
        used = count_tokens(tok, sample.input_text) + sample.max_new_tokens
        assert 0.8 * length < used <= length  # within the budget, and it fills it
        prefix, answer = sample.metadata["prefix"], sample.references[0]
        assert answer == sample.answer and answer.startswith(prefix) and len(prefix) == 10
        passage = answer.removeprefix(prefix)
        assert sample.prompt.count(passage) == 1  # the asked answer occurs exactly once
        question = sample.prompt.rsplit("User: ", 1)[1]
        match = re.fullmatch(r"Prepend (\w{10}) to the (\d+)\w\w \(1 indexed\) (.+) about (.+)\. "
                             r"Do not include any other text in your response\.", question)
        assert match and match[1] == prefix and int(match[2]) == sample.metadata["k"]
        request = f"User: write a {match[3]} about {match[4]}\n\nAssistant: "
        assert sample.prompt.count(request) == needles  # near-identical requests
        # the k-th of them is answered with the asked passage
        kth = sample.prompt.split(request)[int(match[2])]
        assert kth.startswith(passage)
        assert match[3] in FORMS and match[4] in TOPICS


def test_mrcr_uses_chat_turns_with_a_chat_template(tok):
    from transformers import AutoTokenizer

    chat_tok = AutoTokenizer.from_pretrained(tok.name_or_path)
    chat_tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n"
                              "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    sample = get_task("mrcr").samples(chat_tok, 2048, 1, 42)[0]
    assert sample.answer_prefix == "" and sample.prompt.endswith("<|assistant|>")
    assert sample.prompt.count("<|user|>write a ") == sample.metadata["exchanges"]
    assert sample.prompt.count("<|assistant|>") == sample.metadata["exchanges"] + 1
    assert sample.prompt.count(sample.references[0].removeprefix(sample.metadata["prefix"])) == 1
    assert count_tokens(chat_tok, sample.input_text) + sample.max_new_tokens <= 2048
    assert wrap(chat_tok, "x", True).endswith("<|assistant|>")


def test_mrcr_is_deterministic_and_scores_its_own_answer_fully(tok):
    task = get_task("mrcr")
    first = task.samples(tok, 1024, 2, 7)
    assert [s.prompt for s in task.samples(tok, 1024, 2, 7)] == [s.prompt for s in first]
    assert task.score(first[0], first[0].answer) == 1.0
    assert task.score(first[0], first[0].answer.removeprefix(first[0].metadata["prefix"])) == 0.0
    assert task.settled(first[0], "nope, wrong start") and not task.settled(first[0], "")


# ---------------------------------------------------------------- non-literal needles

@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("name", ["nolima_1", "nolima_2"])
def test_nonliteral_needle_shares_no_content_word_with_the_question(tok, name, length):
    samples = get_task(name).samples(tok, length, 3, 42, haystack="pydoc", max_new_tokens=24)
    for sample in samples:
        used = count_tokens(tok, sample.input_text) + sample.max_new_tokens
        assert 0.8 * length < used <= length
        key, place, value = sample.metadata["query"], sample.metadata["place"], sample.references[0]
        needle = NEEDLE.format(place=place, value=value)
        bridge = BRIDGE.format(key=key, place=place)
        assert sample.prompt.count(needle) == 1 and sample.prompt.count(bridge) == 1
        assert sample.prompt.count(value) == 1  # the answer only in the needle
        question = sample.prompt.rsplit("\n", 1)[1] + sample.answer_prefix
        assert key in question and place not in question
        assert not content_words(needle.replace(value, "")) & content_words(question)
        # three distractor chains: the asked code is not the only code in the text
        assert sample.prompt.count(" guards the code ") == 4
        assert sample.prompt.count(" was taken to ") == 4
    assert get_task(name).score(samples[0], f" {samples[0].references[0]}.") == 1.0


def test_nolima_effective_length_by_hand():
    # base (shortest length) 80: a length counts while it keeps >= 68
    assert relative_effective_length({512: 80.0, 1024: 70.0, 2048: 68.0, 4096: 50.0}) == 2048
    assert relative_effective_length({512: 80.0, 1024: 67.9, 2048: 75.0}) == 512
    assert relative_effective_length({512: 20.0, 1024: 17.0}) == 1024  # relative to its own base
    assert relative_effective_length({512: 0.0, 1024: 0.0}) is None
    assert relative_effective_length({}) is None

"""Multi-round coreference retrieval after OpenAI-MRCR (task `mrcr`), generated offline.

A conversation of `units` exchanges: each user turn asks "write a {form} about {topic}" and the
assistant answers with a passage of haystack text. `needles` exchanges make the very same request
(near-identical requests, different answers); the final user turn asks, in OpenAI-MRCR's words,
"Prepend {prefix} to the {k-th} (1 indexed) {form} about {topic}. Do not include any other text in
your response." The answer is the prefix followed by that answer's passage.

Scoring is OpenAI-MRCR's: 0 unless the response starts with the prefix; otherwise difflib's
SequenceMatcher ratio between the response and the answer, both with the prefix removed. Leading
whitespace of the response is dropped first (a model without a chat template continues
"Assistant:" with a space).

With a chat template the exchanges are chat turns; without one they are a transcript
("User: ..." / "Assistant: ...") inside the prompt. The conversation is fitted to the budget by
its number of exchanges.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from difflib import SequenceMatcher

from ropebench.errors import RopebenchError
from ropebench.settings import setting
from ropebench.tasks.base import Sample
from ropebench.tasks.haystacks import get_haystack
from ropebench.tasks.prompting import Draft, Layout, uses_chat
from ropebench.tasks.synthetic import PromptOptions, SyntheticTask

FORMS = ("poem", "short story", "riddle", "blog post", "letter", "song", "speech", "review")
TOPICS = ("the sea", "a lighthouse", "autumn", "tax law", "bread", "a clock", "the moon",
          "trains", "a garden", "rain", "mountains", "a library")
REQUEST = "write a {form} about {topic}"
QUESTION = ("Prepend {prefix} to the {ordinal} (1 indexed) {form} about {topic}. Do not include "
            "any other text in your response.")
PREFIX_CHARS = 10  # OpenAI-MRCR's random strings are 10 characters
ANSWER_ATTEMPTS = 20  # redraws of a passage that also occurs elsewhere in the conversation


def ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def mrcr_score(prediction: str, answer: str, prefix: str) -> float:
    """OpenAI-MRCR's grade: the prefix is required, then the sequence-similarity ratio."""
    response = prediction.lstrip()
    if not response.startswith(prefix):
        return 0.0
    return SequenceMatcher(None, response.removeprefix(prefix), answer.removeprefix(prefix)).ratio()


def passages(words: list[str], count: int, size: int, rng: random.Random) -> list[str]:
    """`count` non-overlapping passages of `size` words at random places of the haystack."""
    slots = max(1, len(words) // size)
    picked = [rng.randrange(slots) for _ in range(count)] if count > slots else rng.sample(
        range(slots), count)
    return [" ".join(words[s * size : (s + 1) * size]) for s in picked]


def mrcr_draft(units: int, rng: random.Random, words: list[str], *, needles: int,
               answer_words: int, chat: bool) -> Draft:
    """`units` exchanges, `needles` of them the same request; the question asks for one of those."""
    form, topic = rng.choice(FORMS), rng.choice(TOPICS)
    others = [(f, t) for f in FORMS for t in TOPICS if (f, t) != (form, topic)]
    requests = [rng.choice(others) for _ in range(units)]
    for slot in sorted(rng.sample(range(units), needles)):
        requests[slot] = (form, topic)
    answers = passages(words, units, answer_words, rng)
    slots = [i for i, request in enumerate(requests) if request == (form, topic)]
    k = rng.randint(1, needles)
    target = slots[k - 1]
    for _ in range(ANSWER_ATTEMPTS):  # the asked answer must be unique in the conversation
        if all(answers[target] not in a for i, a in enumerate(answers) if i != target):
            break
        answers[target] = passages(words, 1, answer_words, rng)[0]
    prefix = "".join(rng.choices(string.ascii_letters + string.digits, k=PREFIX_CHARS))
    exchanges = [(REQUEST.format(form=f, topic=t), a) for (f, t), a in zip(requests, answers,
                                                                          strict=True)]
    question = QUESTION.format(prefix=prefix, ordinal=ordinal(k), form=form, topic=topic)
    if chat:
        text, turns, cue = question, exchanges, ""
    else:
        lines = [f"User: {user}\n\nAssistant: {reply}" for user, reply in exchanges]
        text, turns, cue = "\n\n".join([*lines, f"User: {question}"]), [], "\n\nAssistant:"
    answer = prefix + answers[target]
    return Draft(text=text, answer_prefix=cue, references=[answer], answer=answer, turns=turns,
                 metadata={"prefix": prefix, "needles": needles, "k": k, "position": target,
                           "exchanges": units})


@dataclass
class MrcrOptions(PromptOptions):
    max_new_tokens: int = setting(128, min=1)
    needles: int = setting(2, min=1)  # exchanges that make the asked request
    answer_words: int = setting(25, min=1)  # words of each answer's passage
    haystack: str = "pydoc"  # the text answers are cut from


class MRCR(SyntheticTask):
    name = "mrcr"
    title = "Multi-round coreference (MRCR, %)"
    abbrev = "mrcr"
    description = ("MRCR (after OpenAI-MRCR): the k-th of several identical requests in a "
                   "conversation, answered with a random prefix; prefix rule + similarity ratio")
    Options = MrcrOptions

    def layout(self, tokenizer, length: int, n: int, seed: int, options: MrcrOptions) -> Layout:
        if options.needles < 1 or options.answer_words < 1:
            raise RopebenchError("mrcr needs needles >= 1 and answer_words >= 1; raise the option")
        chat = uses_chat(tokenizer, options.chat)
        words = get_haystack(options.haystack).words
        return Layout(
            lambda units, rng, _: mrcr_draft(units, rng, words, needles=options.needles,
                                             answer_words=options.answer_words, chat=chat),
            min_units=options.needles, max_units=max(options.needles, length), metric="mrcr",
            cache_key=(options.needles, options.answer_words, options.haystack),
        )

    def score(self, sample: Sample, prediction: str) -> float:
        return mrcr_score(prediction, sample.references[0], sample.metadata["prefix"])

    def settled(self, sample: Sample, prediction: str) -> bool:
        """Once the response is as long as the prefix and does not start with it, it scores 0."""
        response = prediction.lstrip()
        prefix = sample.metadata["prefix"]
        return len(response) >= len(prefix) and not response.startswith(prefix)

"""Build the project's offline short-context task set from held-out Python documentation.

`python -m ropebench.tasks.short_tasks.build` rewrites `pydoc_mc.jsonl` and `pydoc_gen.jsonl`.
The pydoc topics are held out of the reference model's training corpus (stdlib source), so the
items test language about Python that the model has read about, not memorized text.
- pydoc_mc: a sentence's beginning; choose its true ending among four endings of other sentences.
- pydoc_gen: a sentence's beginning; generate its next word (exact match, case-insensitive).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from ropebench.tasks.haystacks import get_haystack

HERE = Path(__file__).resolve().parent
ITEMS = 80
SEED = 1234
_PLAIN = re.compile(r"^[A-Z][A-Za-z ,;'-]+\.$")  # prose only: no code, markup or digits
# The split the shipped items were built with (whitespace after `.!?`), kept so that a rebuild
# reproduces them; the haystacks' punkt-like split would pick other sentences.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def prose_sentences() -> list[str]:
    sentences = []
    for doc in get_haystack("pydoc").documents:
        for sentence in _SENTENCE_END.split(re.sub(r"\s+", " ", doc).strip()):
            if _PLAIN.match(sentence) and 10 <= len(sentence.split()) <= 30:
                sentences.append(sentence)
    return sorted(set(sentences))


def split_point(words: list[str]) -> int:
    return max(4, round(len(words) * 0.6))


def multiple_choice(sentences: list[str], rng: random.Random) -> list[dict]:
    items = []
    for sentence in rng.sample(sentences, ITEMS):
        words = sentence.split()
        cut = split_point(words)
        ending = " ".join(words[cut:])
        others = []
        while len(others) < 3:
            other = rng.choice(sentences).split()
            candidate = " ".join(other[split_point(other) :])
            if candidate != ending and candidate not in others:
                others.append(candidate)
        label = rng.randrange(4)
        choices = others[:label] + [ending] + others[label:]
        items.append({"context": " ".join(words[:cut]), "choices": choices, "label": label})
    return items


def next_word(sentences: list[str], rng: random.Random) -> list[dict]:
    items = []
    for sentence in rng.sample(sentences, ITEMS):
        words = sentence.split()
        cut = split_point(words)
        target = re.sub(r"[^A-Za-z'-]", "", words[cut])
        items.append({"prompt": " ".join(words[:cut]), "target": target})
    return items


def write_jsonl(path: Path, items: list[dict]) -> None:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))


def main() -> None:
    sentences = prose_sentences()
    write_jsonl(HERE / "pydoc_mc.jsonl", multiple_choice(sentences, random.Random(SEED)))
    write_jsonl(HERE / "pydoc_gen.jsonl", next_word(sentences, random.Random(SEED + 1)))


if __name__ == "__main__":
    main()

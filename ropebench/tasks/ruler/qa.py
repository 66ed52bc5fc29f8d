"""RULER question answering (NVIDIA/RULER, scripts/data/synthetic/qa.py): SQuAD v2 and HotpotQA.

The gold paragraph(s) of question i (the i-th answerable question of the file) are mixed with
distractors up to the token budget and shuffled. SQuAD's distractors are first the other paragraphs
of the same article, then random ones. Scored with `string_match_part`.

Data: a local file via the `squad_path` / `hotpotqa_path` option or `$ROPEBENCH_SQUAD` /
`$ROPEBENCH_HOTPOTQA`, else `~/.cache/ropebench/qa/`, downloaded there when the network allows.
"""

from __future__ import annotations

import functools
import json
import os
import random
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ropebench.errors import RopebenchError
from ropebench.settings import setting
from ropebench.tasks.haystacks import cache_dir
from ropebench.tasks.prompting import Draft, Layout
from ropebench.tasks.ruler import templates
from ropebench.tasks.ruler.scoring import RulerTask
from ropebench.tasks.synthetic import FillOptions

SOURCES = {
    "squad": (
        "ROPEBENCH_SQUAD",
        "dev-v2.0.json",
        "https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v2.0.json",
    ),
    "hotpotqa": (
        "ROPEBENCH_HOTPOTQA",
        "hotpot_dev_distractor_v1.json",
        "http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json",
    ),
}
MAX_QUESTIONS = 500  # RULER uses the first 500 questions


@dataclass
class QaOptions(FillOptions):
    max_new_tokens: int = setting(templates.QA_MAX_NEW, min=1)
    # "reference": documents shuffled with a generator seeded by the run seed, as RULER does;
    # "uniform": a fresh shuffle per sample.
    gold: str = setting("reference", choices=("reference", "uniform"))
    count_bos: bool = False
    squad_path: str | None = None
    hotpotqa_path: str | None = None


@dataclass(frozen=True)
class Question:
    query: str
    answers: tuple[str, ...]
    gold: tuple[int, ...]  # indices into the document list
    related: tuple[int, ...] = ()  # preferred distractors (same article)


@dataclass(frozen=True)
class QADataset:
    questions: tuple[Question, ...]
    documents: tuple[str, ...]


def read_squad(data: dict) -> QADataset:
    """Answerable SQuAD v2 questions; documents are the distinct paragraphs, sorted."""
    docs = sorted({p["context"] for article in data["data"] for p in article["paragraphs"]})
    index = {doc: i for i, doc in enumerate(docs)}
    questions = []
    for article in data["data"]:
        article_docs = [index[p["context"]] for p in article["paragraphs"]]
        for paragraph in article["paragraphs"]:
            gold = index[paragraph["context"]]
            for qa in paragraph["qas"]:
                if qa.get("is_impossible"):
                    continue
                questions.append(
                    Question(
                        query=qa["question"],
                        answers=tuple(a["text"] for a in qa["answers"]),
                        gold=(gold,),
                        related=tuple(i for i in article_docs if i != gold),
                    )
                )
    return QADataset(tuple(questions), tuple(docs))


def read_hotpotqa(data: list) -> QADataset:
    """HotpotQA distractor setting; a document is `title\\nsentences`, all distinct ones sorted."""

    def render(title: str, sentences: list[str]) -> str:
        return f"{title}\n{''.join(sentences)}"

    docs = sorted({render(t, s) for item in data for t, s in item["context"]})
    index = {doc: i for i, doc in enumerate(docs)}
    questions = tuple(
        Question(
            query=item["question"],
            answers=(item["answer"],),
            gold=tuple(index[render(t, s)] for t, s in item["context"]),
        )
        for item in data
    )
    return QADataset(questions, tuple(docs))


def resolve_path(source: str, path: str | None) -> Path:
    env, filename, url = SOURCES[source]
    chosen = path or os.environ.get(env)
    if chosen:
        if not Path(chosen).is_file():
            raise RopebenchError(
                f"{source} file {chosen} does not exist; give the path of {filename}"
            )
        return Path(chosen)
    cached = cache_dir() / "qa" / filename
    if not cached.is_file():
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with urllib.request.urlopen(url, timeout=60) as response:
                data = response.read()
            cached.write_bytes(data)
        except OSError as err:
            raise RopebenchError(
                f"cannot download {filename} ({err}); download it elsewhere and set {env}=PATH "
                f"or pass the {source}_path option"
            ) from err
    return cached


@functools.lru_cache(maxsize=4)
def load_qa(source: str, path: str | None = None) -> QADataset:
    file = resolve_path(source, path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        return read_squad(data) if source == "squad" else read_hotpotqa(data)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise RopebenchError(f"{file} is not a {source} file ({err!r}); check the path") from err


def qa_draft(dataset: QADataset, units: int, rng: random.Random, index: int,
             shuffle_seed: int | None = None) -> Draft:
    """Question `index` with `units` documents: gold first, then same-article, then random ones.

    `shuffle_seed`: shuffle the documents with a generator of that seed, as RULER does, so the
    gold paragraphs sit in the same slot for every sample with the same document count; None: a
    uniform shuffle with `rng`."""
    q = dataset.questions[index % len(dataset.questions)]
    if units >= len(dataset.documents):
        chosen = list(range(len(dataset.documents)))
    elif units - len(q.gold) <= len(q.related):
        chosen = list(q.gold) + rng.sample(list(q.related), max(0, units - len(q.gold)))
    else:
        taken = set(q.gold) | set(q.related)
        others = [i for i in range(len(dataset.documents)) if i not in taken]
        chosen = list(q.gold) + list(q.related) + rng.sample(others, units - len(taken))
    (rng if shuffle_seed is None else random.Random(shuffle_seed)).shuffle(chosen)
    context = "\n\n".join(
        templates.QA_DOCUMENT.format(i=i + 1, document=dataset.documents[d])
        for i, d in enumerate(chosen)
    )
    return Draft(
        text=templates.QA_TEMPLATE.format(context=context, query=q.query),
        answer_prefix=templates.QA_ANSWER_PREFIX,
        references=list(q.answers),
        answer=" " + q.answers[0],
        metadata={"question": index % len(dataset.questions), "documents": len(chosen),
                  "gold_documents": [chosen.index(g) + 1 for g in q.gold if g in chosen],
                  "gold": "uniform" if shuffle_seed is None else "reference"},
    )


class RulerQA(RulerTask):
    """qa_1 (SQuAD v2) or qa_2 (HotpotQA); option `squad_path` / `hotpotqa_path`: a local file."""

    Options = QaOptions

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.description = f"RULER {name}: {source} question over gold + distractor documents"

    def layout(self, tokenizer, length: int, n: int, seed: int, options: QaOptions) -> Layout:
        path = options.squad_path if self.source == "squad" else options.hotpotqa_path
        dataset = load_qa(self.source, str(path) if path else None)
        questions = min(len(dataset.questions), MAX_QUESTIONS)
        if n > questions:
            raise RopebenchError(
                f"{self.name} has {questions} questions; ask for at most that many samples"
            )
        shuffle_seed = seed if options.gold == "reference" else None
        return Layout(
            lambda units, rng, index: qa_draft(dataset, units, rng, index, shuffle_seed),
            min_units=max(len(q.gold) for q in dataset.questions[:n]),
            max_units=len(dataset.documents), metric="part",
            step=10,  # RULER: 10 documents
            cache_key=(str(path), options.gold),
        )

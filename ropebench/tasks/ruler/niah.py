"""RULER's eight needle-in-a-haystack tasks (NVIDIA/RULER, scripts/data/synthetic/niah.py)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

from ropebench.settings import setting
from ropebench.tasks.haystacks import NOISE_LINE, get_haystack, split_sentences
from ropebench.tasks.prompting import Draft, Layout
from ropebench.tasks.ruler import templates
from ropebench.tasks.ruler.scoring import RulerTask
from ropebench.tasks.ruler.words import random_key
from ropebench.tasks.synthetic import RulerOptions

# Needle depths in percent: round(linspace(0, 100, 40)).
DEPTHS = tuple(round(100 * i / 39) for i in range(40))


@dataclass
class NiahOptions(RulerOptions):
    max_new_tokens: int = setting(templates.NIAH_MAX_NEW, min=1)
    haystack: str = "essay"  # replaces the essay haystack: a haystack name or a folder


@dataclass(frozen=True)
class NiahConfig:
    """One row of RULER's niah table (synthetic.yaml)."""

    haystack: str  # "noise" (repeated line), "needle" (distractor needles) or "essay" (real text)
    type_needle_k: str  # "words", "numbers" or "uuids"
    type_needle_v: str
    num_needle_k: int = 1
    num_needle_v: int = 1
    num_needle_q: int = 1

    @property
    def num_keys(self) -> int:
        return max(self.num_needle_k, self.num_needle_q)

    @property
    def num_needles(self) -> int:
        return self.num_keys * self.num_needle_v


NIAH_TASKS: dict[str, NiahConfig] = {
    "niah_single_1": NiahConfig("noise", "words", "numbers"),
    "niah_single_2": NiahConfig("essay", "words", "numbers"),
    "niah_single_3": NiahConfig("essay", "words", "uuids"),
    "niah_multikey_1": NiahConfig("essay", "words", "numbers", num_needle_k=4),
    "niah_multikey_2": NiahConfig("needle", "words", "numbers"),
    "niah_multikey_3": NiahConfig("needle", "uuids", "uuids"),
    "niah_multivalue": NiahConfig("essay", "words", "numbers", num_needle_v=4),
    "niah_multiquery": NiahConfig("essay", "words", "numbers", num_needle_k=4, num_needle_q=4),
}


def random_atom(kind: str, rng: random.Random) -> str:
    if kind == "numbers":
        return str(rng.randint(10**6, 10**7 - 1))  # 7 digits
    if kind == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return random_key(rng)


def join_queries(queries: list[str]) -> str:
    """RULER joins several queried keys as "k1, k2, k3, and k4"."""
    return queries[0] if len(queries) == 1 else ", ".join(queries[:-1]) + ", and " + queries[-1]


def insert_at_depths(sentences: list[str], needles: list[str], depths: list[int]) -> str:
    """Insert needle i after sentence int(n * depth_i / 100) (depths sorted), joined by spaces."""
    cuts = [0] + sorted(int(len(sentences) * d / 100) for d in depths) + [len(sentences)]
    parts: list[str] = []
    for i in range(1, len(cuts)):
        parts.append(" ".join(sentences[cuts[i - 1] : cuts[i]]))
        if i - 1 < len(needles):
            parts.append(needles[i - 1])
    return " ".join(parts)


def niah_draft(config: NiahConfig, units: int, rng: random.Random, essay: str = "essay",
               needle_seed: int | None = None) -> Draft:
    """One niah prompt with `units` haystack units (words for essays, lines otherwise).

    `needle_seed`: shuffle the needles with a generator of that seed, as RULER does (the same
    permutation for every sample); None: with `rng`."""
    v = config.type_needle_v
    keys, values, needles = [], [], []
    for _ in range(config.num_keys):
        keys.append(random_atom(config.type_needle_k, rng))
        values.append([random_atom(v, rng) for _ in range(config.num_needle_v)])
        needles.extend(
            templates.NEEDLE.format(type_needle_v=v, key=keys[-1], value=x) for x in values[-1]
        )
    (rng if needle_seed is None else random.Random(needle_seed)).shuffle(needles)

    if config.haystack == "essay":
        sentences = split_sentences(get_haystack(essay).first_words(units, raw=needle_seed is not None))
        depths = rng.sample(DEPTHS, len(needles))
        context = insert_at_depths(sentences, needles, depths)
    else:
        if config.haystack == "noise":
            lines = [NOISE_LINE] * units
        else:  # every haystack line is a distractor needle
            lines = [
                templates.NEEDLE.format(
                    type_needle_v=v,
                    key=random_atom(config.type_needle_k, rng),
                    value=random_atom(v, rng),
                )
                for _ in range(units)
            ]
        for index, needle in zip(
            sorted(rng.sample(range(units), len(needles)), reverse=True), needles, strict=True
        ):
            lines.insert(index, needle)
        context = "\n".join(lines)

    asked = rng.sample(range(config.num_keys), config.num_needle_q)
    query = join_queries([keys[i] for i in asked])
    references = [value for i in asked for value in values[i]]
    template, prefix, type_v = templates.NIAH_TEMPLATE, templates.NIAH_ANSWER_PREFIX, v
    if len(references) == 1:
        template, prefix, type_v = (
            templates.single_answer(template),
            templates.single_answer(prefix),
            v[:-1],
        )
    return Draft(
        text=template.format(type_needle_v=type_v, context=context, query=query),
        answer_prefix=prefix.format(type_needle_v=type_v, query=query),
        references=references,
        answer=" " + ", ".join(references) + ".",
        metadata={"query": query},
    )


def step_units(haystack: str, length: int) -> int:
    """RULER's step-down unit: 500 essay words; 25 noise or needle lines (5 below 4K)."""
    if haystack == "essay":
        return 500
    return 25 if length >= 4096 else 5


class RulerNiah(RulerTask):
    """A RULER niah task. Option `haystack` replaces the essay haystack (e.g. `pydoc`, a folder)."""

    Options = NiahOptions

    def __init__(self, name: str, config: NiahConfig) -> None:
        self.name = name
        self.config = config
        self.description = f"RULER {name}: {config.haystack} haystack, {config.type_needle_k} -> {config.type_needle_v}"

    def layout(self, tokenizer, length: int, n: int, seed: int, options: NiahOptions) -> Layout:
        essay = options.haystack if self.config.haystack == "essay" else "essay"
        if self.config.haystack == "essay":
            get_haystack(essay)  # fail early, with the haystack's own message
        needle_seed = seed if options.fill == "reference" else None
        return Layout(lambda units, rng, _: niah_draft(self.config, units, rng, essay, needle_seed),
                      min_units=self.config.num_needles, max_units=length,
                      step=step_units(self.config.haystack, length), cache_key=(essay,))

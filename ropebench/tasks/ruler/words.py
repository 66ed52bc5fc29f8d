"""Word lists as RULER uses them: wonderwords' (local files) and, for CWE beyond wonderwords'
size, the English list of the random-word package (its `database/words.json`, in file order: the
reference's `json/english_words.json` is that file's words, keyed by position)."""

from __future__ import annotations

import functools
import importlib.util
import json
import random
from collections.abc import MutableSequence
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError

ENGLISH_PACKAGE = "random-word==1.0.11"
POSITIONS = ("reference", "per_sample")


def shuffle(items: MutableSequence[Any], rng: random.Random, fixed_seed: int | None) -> None:
    """RULER's CWE and FWE shuffle with a fresh `Random(seed)` each time (`fixed_seed`): a list of
    one shape gets the same permutation in every sample; None: a draw from `rng` instead."""
    (rng if fixed_seed is None else random.Random(fixed_seed)).shuffle(items)


@functools.lru_cache(maxsize=1)
def _categories() -> dict[str, tuple[str, ...]]:
    import wonderwords

    cats = wonderwords.RandomWord()._categories
    return {name: tuple(sorted(set(cats[name]))) for name in ("nouns", "adjectives", "verbs")}


@functools.lru_cache(maxsize=1)
def _key_blocks() -> tuple[list[tuple[int, tuple[str, ...] | str]], int]:
    """RULER's keys are `sorted(set(f"{adj}-{noun}"))` over all 6 million pairs. The sorted list
    is laid out in blocks without building it: an adjective's pairs are contiguous and follow
    the noun order, except where one adjective extends another by a hyphen ("blue", "blue-eyed"):
    those few groups are materialised. Returns [(start index, block)], total count."""
    cats = _categories()
    nouns = cats["nouns"]
    groups: dict[str, list[str]] = {}
    for adj in cats["adjectives"]:
        root = next((r for r in cats["adjectives"] if adj.startswith(r + "-")), adj)
        groups.setdefault(root, []).append(adj)
    blocks: list[tuple[int, tuple[str, ...] | str]] = []
    start = 0
    for root in sorted(groups, key=lambda r: r + "-"):
        members = groups[root]
        if len(members) == 1:
            blocks.append((start, root))
            start += len(nouns)
        else:
            pairs = tuple(sorted({f"{adj}-{noun}" for adj in members for noun in nouns}))
            blocks.append((start, pairs))
            start += len(pairs)
    return blocks, start


@functools.lru_cache(maxsize=1)
def _block_starts() -> list[int]:
    return [start for start, _ in _key_blocks()[0]]


def key_at(index: int) -> str:
    """The `index`-th of RULER's sorted `adjective-noun` keys."""
    import bisect

    blocks, _ = _key_blocks()
    i = bisect.bisect_right(_block_starts(), index) - 1
    start, block = blocks[i]
    if isinstance(block, tuple):
        return block[index - start]
    return f"{block}-{_categories()['nouns'][index - start]}"


def random_key(rng: random.Random) -> str:
    """RULER's `random.choice(words)` over its sorted keys: the same draw for the same generator
    state, without building all 6 million pairs."""
    return key_at(rng.randrange(_key_blocks()[1]))


@functools.lru_cache(maxsize=1)
def cwe_vocabulary() -> tuple[str, ...]:
    """Nouns + adjectives + verbs, deduplicated, sorted and shuffled with RULER's fixed seed 42."""
    cats = _categories()
    words = sorted({w for name in ("nouns", "adjectives", "verbs") for w in cats[name]})
    random.Random(42).shuffle(words)
    return tuple(words)


@functools.lru_cache(maxsize=1)
def english_words() -> tuple[str, ...]:
    """The reference's larger English list (370,101 words), read from the installed package
    without importing it (its import pulls in HTTP clients this list does not need)."""
    spec = importlib.util.find_spec("random_word")
    if spec is None or not spec.submodule_search_locations:
        raise RopebenchError(
            f"cwe needs more than the {len(cwe_vocabulary())} wonderwords words here, and the "
            f"larger English list comes from {ENGLISH_PACKAGE}: pip install it"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "database" / "words.json"
    return tuple(json.loads(path.read_text(encoding="utf-8")))

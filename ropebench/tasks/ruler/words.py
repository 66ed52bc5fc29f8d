"""Word lists from wonderwords (local files), as RULER uses them."""

from __future__ import annotations

import functools
import random


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

"""Word lists from wonderwords (local files), as RULER uses them."""

from __future__ import annotations

import functools
import random


@functools.lru_cache(maxsize=1)
def _categories() -> dict[str, tuple[str, ...]]:
    import wonderwords

    cats = wonderwords.RandomWord()._categories
    return {name: tuple(sorted(set(cats[name]))) for name in ("nouns", "adjectives", "verbs")}


def random_key(rng: random.Random) -> str:
    """A uniform draw from RULER's `adjective-noun` keys, without building all 6 million pairs."""
    cats = _categories()
    return f"{rng.choice(cats['adjectives'])}-{rng.choice(cats['nouns'])}"


@functools.lru_cache(maxsize=1)
def cwe_vocabulary() -> tuple[str, ...]:
    """Nouns + adjectives + verbs, deduplicated, sorted and shuffled with RULER's fixed seed 42."""
    cats = _categories()
    words = sorted({w for name in ("nouns", "adjectives", "verbs") for w in cats[name]})
    random.Random(42).shuffle(words)
    return tuple(words)

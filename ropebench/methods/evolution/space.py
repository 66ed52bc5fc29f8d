"""The search space of per-pair factors: candidates on a 0.01 grid, bounds, mutation, crossover.

A candidate is a critical index `c` plus the searched factors of the pairs `i >= c`, stored as
integers on the grid so that equality (and "never evaluate a vector twice") is exact. The pairs
below `c` are not searched: LongRoPE2 anchors them NTK-style on the first searched factor,
`f_i = f_c^(i/c)`. LongRoPE v1 is the special case `c = 0` with wider bounds.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ropebench.rope.math import longrope2_factors
from ropebench.rope.spec import RopeSpec

GRID = 0.01  # the search grid of factor values (both papers)


@dataclass(frozen=True)
class Candidate:
    """Pairs `>= critical_index` carry searched factors `genes[j] * GRID`; the ones below follow."""

    critical_index: int
    genes: tuple[int, ...]

    @property
    def key(self) -> str:
        return f"{self.critical_index}:" + ",".join(map(str, self.genes))

    @classmethod
    def from_key(cls, key: str) -> Candidate:
        index, genes = key.split(":")
        return cls(int(index), tuple(int(g) for g in genes.split(",")))


@dataclass(frozen=True)
class SearchSpace:
    """Bounds (in grid steps) of the searched factors, and how a candidate becomes factors."""

    spec: RopeSpec
    low: int
    high: int
    ntk_lower_group: bool  # LongRoPE2: pairs below the critical index follow f_c^(i/c)

    def factors(self, cand: Candidate) -> tuple[float, ...]:
        """The full list of `n_pairs` factors of a candidate."""
        upper = [g * GRID for g in cand.genes]
        if cand.critical_index == 0 or not self.ntk_lower_group:
            return tuple(upper)
        return tuple(longrope2_factors(self.spec, cand.critical_index, upper))

    def valid(self, cand: Candidate) -> bool:
        """In bounds and monotonically non-decreasing."""
        genes = cand.genes
        in_bounds = all(self.low <= g <= self.high for g in genes)
        return in_bounds and all(a <= b for a, b in zip(genes, genes[1:], strict=False))

    def snap(self, critical_index: int, factors: list[float]) -> Candidate:
        """The nearest valid candidate: factors of pairs >= c rounded to the grid, clipped, made monotone."""
        genes: list[int] = []
        for f in factors[critical_index:]:
            g = min(max(round(f / GRID), self.low), self.high)
            genes.append(max(g, genes[-1]) if genes else g)
        return Candidate(critical_index, tuple(genes))


def grid_floor(x: float) -> int:
    return math.floor(x / GRID + 1e-6)


def grid_ceil(x: float) -> int:
    return math.ceil(x / GRID - 1e-6)


def mutate(cand: Candidate, space: SearchSpace, rng: random.Random, prob: float) -> Candidate:
    """Resample each gene with probability `prob` on the grid between its neighbours.

    Drawing between the neighbours (clipped to the bounds) keeps the vector monotone and valid.
    """
    genes = list(cand.genes)
    for j in range(len(genes)):
        if rng.random() < prob:
            lo = max(genes[j - 1] if j > 0 else space.low, space.low)
            hi = min(genes[j + 1] if j + 1 < len(genes) else space.high, space.high)
            if lo <= hi:
                genes[j] = rng.randint(lo, hi)
    return Candidate(cand.critical_index, tuple(genes))


def crossover(
    first: Candidate, second: Candidate, space: SearchSpace, rng: random.Random, prob: float
) -> Candidate:
    """Start from `first`; each searched pair takes `second`'s factor with probability `prob`.

    The child may be invalid (the parents may split at different critical indices): callers check.
    """
    other = space.factors(second)
    c = first.critical_index
    genes = [
        round(other[c + j] / GRID) if rng.random() < prob else g for j, g in enumerate(first.genes)
    ]
    return Candidate(c, tuple(genes))



"""The search space of per-pair factors: candidates on a 0.01 grid, bounds, mutation, crossover.

A candidate is a critical index `c` plus the searched factors of the pairs `i >= c`, stored as
integers on the grid so that equality (and "never evaluate a vector twice") is exact. The pairs
below `c` are not searched: LongRoPE2 anchors them NTK-style on the first searched factor,
`f_i = f_c^(i/c)` (or, as an ablation, gives them fixed factors such as YaRN's). LongRoPE v1 is the
special case `c = 0` with wider bounds.

The paper asks for non-decreasing factors, the released code for strictly increasing ones
(`strict`). Either way every gene can move: a mutation that lands inside a run of equal genes
splits the run (see `mutate`), so a constant seed does not freeze the interior of the vector.
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
    strict: bool = False  # the released code: strictly increasing genes; the paper: non-decreasing
    # Fixed factors for the pairs below the critical index instead of the NTK anchor (an ablation:
    # YaRN's lower group under a searched upper group).
    fixed_lower: tuple[float, ...] | None = None

    @property
    def gap(self) -> int:
        """The least step between neighbouring genes."""
        return 1 if self.strict else 0

    def factors(self, cand: Candidate) -> tuple[float, ...]:
        """The full list of `n_pairs` factors of a candidate."""
        upper = [g * GRID for g in cand.genes]
        c = cand.critical_index
        if c == 0 or not self.ntk_lower_group:
            return tuple(upper)
        if self.fixed_lower is not None:
            return tuple(self.fixed_lower[:c]) + tuple(upper)
        return tuple(longrope2_factors(self.spec, c, upper))

    def valid(self, cand: Candidate) -> bool:
        """In bounds and monotone (strictly so in the released code's rule)."""
        genes = cand.genes
        in_bounds = all(self.low <= g <= self.high for g in genes)
        return in_bounds and all(b - a >= self.gap for a, b in zip(genes, genes[1:], strict=False))

    def snap(self, critical_index: int, factors: list[float], strict: bool = False) -> Candidate:
        """The nearest valid candidate: factors of pairs >= c rounded to the grid, clipped, made
        monotone; under the strict rule (the space's, or `strict` for seeds), genes pushed
        against the upper bound step down from it by one grid step each."""
        gap = 1 if strict else self.gap
        genes: list[int] = []
        for f in factors[critical_index:]:
            g = min(max(round(f / GRID), self.low), self.high)
            genes.append(max(g, genes[-1] + gap) if genes else g)
        for j in range(len(genes) - 1, -1, -1):
            cap = self.high if j == len(genes) - 1 else genes[j + 1] - gap
            genes[j] = min(genes[j], cap)
        return Candidate(critical_index, tuple(genes))


def grid_floor(x: float) -> int:
    return math.floor(x / GRID + 1e-6)


def grid_ceil(x: float) -> int:
    return math.ceil(x / GRID - 1e-6)


def _run(genes: list[int], j: int) -> tuple[int, int]:
    """First and last index of the run of genes equal to genes[j]."""
    first, last = j, j
    while first > 0 and genes[first - 1] == genes[j]:
        first -= 1
    while last + 1 < len(genes) and genes[last + 1] == genes[j]:
        last += 1
    return first, last


def mutate_gene(genes: list[int], j: int, space: SearchSpace, rng: random.Random) -> None:
    """Redraw gene j on the grid between the genes around its run of equal values (the bounds at
    the ends: the last gene may reach the top of the range, as in the released code).

    A gene with distinct neighbours is drawn between them. Inside a run of equal genes (a constant
    seed, or a non-decreasing vector), drawing between the immediate neighbours could only return
    the same value; instead the new value moves the gene and the part of the run on the side it
    moved to (up: j..last, down: first..j), which keeps the vector monotone and splits the run.
    """
    first, last = _run(genes, j)
    lo = genes[first - 1] + space.gap if first > 0 else space.low
    hi = genes[last + 1] - space.gap if last + 1 < len(genes) else space.high
    lo, hi = max(lo, space.low), min(hi, space.high)
    if lo > hi:
        return
    value = rng.randint(lo, hi)
    if value > genes[j]:
        genes[j : last + 1] = [value] * (last + 1 - j)
    elif value < genes[j]:
        genes[first : j + 1] = [value] * (j + 1 - first)


def mutate(cand: Candidate, space: SearchSpace, rng: random.Random, prob: float) -> Candidate:
    """Redraw each gene with probability `prob` (`mutate_gene`); the result stays valid."""
    genes = list(cand.genes)
    for j in range(len(genes)):
        if rng.random() < prob:
            mutate_gene(genes, j, space, rng)
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



"""Evolutionary search of per-pair RoPE factors: LongRoPE2 (arXiv 2502.20082) and LongRoPE (2402.13753).

A candidate is a critical index `c` plus the searched factors of the pairs `i >= c`, stored as
integers on a 0.01 grid so that equality (and "never evaluate a vector twice") is exact. The pairs
below `c` are not searched: LongRoPE2 anchors them NTK-style on the first searched factor,
`f_i = f_c^(i/c)`. LongRoPE v1 is the special case `c = 0` with wider bounds.

One generation (paper settings in brackets): keep the best `parents` [32] of the population, add
`mutations` [16] mutants and `crossovers` [16] children, evaluate only the new vectors. The state
is written to a JSON checkpoint after every evaluation, so an interrupted search resumes where it
stopped and ends exactly where an uninterrupted run with the same seed would.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ropebench.errors import RopebenchError
from ropebench.extenders.base import RopeScaling
from ropebench.extenders.rope import RopeSpec

GRID = 0.01  # the search grid of factor values (both papers)
MAX_TRIES = 100  # attempts to draw an unseen mutant before giving up on that child
CROSSOVER_TRIES = 20  # LongRoPE2: after 20 invalid crossovers, mutate the first parent instead


@dataclass
class SearchSettings:
    """Budgets and choices of one search. Defaults are the LongRoPE2 paper's."""

    population: int = 64
    iterations: int = 40
    parents: int = 32
    mutations: int = 16
    crossovers: int = 16
    mutation_prob: float = 0.3
    crossover_prob: float = 0.15
    documents: int = 10  # documents the fitness averages over
    fitness: str = "needle_ppl"  # a name in `fitness_functions()`
    mode: str = "paper"  # "paper": candidate critical indices d10_tcd..d_tcd; "released": one fixed index
    critical_index: int | None = None  # fixes the critical index (default: see `mode`)
    haystack: str = "pydoc"
    # The candidates' attention temperature: "longrope" (the paper's models) or "yarn" (an option
    # of the released code); see `longrope_scaling`.
    mscale: str = "longrope"
    seed: int = 0
    # LongRoPE v1: the first n_hat positions keep the original RoPE during the search. Recorded in
    # the result's `extra`; transformers' longrope has no such option, so exported models ignore it.
    n_hat: int = 0
    progress: bool = True  # show a progress bar (how a search runs, not what it finds)
    # Analytic methods scored once on the fitness documents, so a result says whether the search
    # beat them on the very documents it optimised. They take no part in the search.
    baselines: tuple[str, ...] = ("pi", "ntk", "yarn")

    def __post_init__(self) -> None:
        if self.mode not in ("paper", "released"):
            raise RopebenchError(f"search mode {self.mode!r} is unknown; use 'paper' or 'released'")
        if min(self.population, self.parents, self.documents) < 1 or self.iterations < 0:
            raise RopebenchError("population, parents and documents must be >= 1 and iterations >= 0")
        if self.parents > self.population:
            raise RopebenchError(
                f"parents ({self.parents}) cannot exceed the population ({self.population})"
            )
        if not (0 <= self.mutation_prob <= 1 and 0 <= self.crossover_prob <= 1):
            raise RopebenchError("mutation_prob and crossover_prob must be within [0, 1]")
        from ropebench.extenders.rope import check_mscale

        check_mscale(self.mscale)
        if self.n_hat < 0:
            raise RopebenchError(f"n_hat must be >= 0, got {self.n_hat}")
        self.baselines = tuple(self.baselines)  # a plan's YAML gives a list
        from ropebench.extenders.base import get_extender

        for name in self.baselines:  # fail before a model is loaded, not after
            try:
                get_extender(name)
            except RopebenchError as err:
                raise RopebenchError(f"search baseline: {err}") from err


# ---------------------------------------------------------------------------------------------
# Fitness functions: a registry by name. A factory builds the scorer once (documents, tokens);
# the scorer maps a patched model to a number, lower is better.

Scorer = Callable[[torch.nn.Module], float]
FitnessFactory = Callable[[Any, int, SearchSettings], Scorer]  # (tokenizer, length, settings)
_FITNESS: dict[str, FitnessFactory] = {}


def register_fitness(name: str) -> Callable[[FitnessFactory], FitnessFactory]:
    """Decorator: make a fitness factory available as `SearchSettings(fitness=name)`."""

    def decorate(factory: FitnessFactory) -> FitnessFactory:
        _FITNESS[name] = factory
        return factory

    return decorate


def fitness_functions() -> dict[str, FitnessFactory]:
    return dict(_FITNESS)


def make_scorer(tokenizer, length: int, settings: SearchSettings) -> Scorer:
    if settings.fitness not in _FITNESS:
        raise RopebenchError(
            f"unknown fitness {settings.fitness!r}; known: {', '.join(sorted(_FITNESS))}"
        )
    return _FITNESS[settings.fitness](tokenizer, length, settings)


@register_fitness("needle_ppl")
def _needle_ppl(tokenizer, length: int, settings: SearchSettings) -> Scorer:
    """LongRoPE2's fitness: perplexity of the needle's answer tokens only."""
    from ropebench.tasks.needle_ppl import NeedlePPL

    return NeedlePPL(
        tokenizer, length, settings.documents, seed=settings.seed, haystack=settings.haystack
    ).score


@register_fitness("ppl")
def _plain_ppl(tokenizer, length: int, settings: SearchSettings) -> Scorer:
    """LongRoPE v1's fitness (and the LongRoPE2 ablation): perplexity of every token."""
    from ropebench.tasks.ppl import perplexity

    def score(model: torch.nn.Module) -> float:
        return perplexity(
            model, tokenizer, length, documents=settings.documents, haystack=settings.haystack
        )

    return score


# ---------------------------------------------------------------------------------------------
# Candidates and the search space.


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
        from ropebench.extenders.longrope2 import longrope2_factors

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


def _grid_floor(x: float) -> int:
    return math.floor(x / GRID + 1e-6)


def _grid_ceil(x: float) -> int:
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


# ---------------------------------------------------------------------------------------------
# Search state, checkpointed as JSON.


@dataclass
class SearchState:
    generation: int = 0  # generations completed
    population: list[str] = field(default_factory=list)  # candidate keys at the generation boundary
    seen: list[str] = field(default_factory=list)  # every key ever proposed, at the boundary
    cache: dict[str, float] = field(default_factory=dict)  # key -> fitness of every evaluation
    history: list[float] = field(default_factory=list)  # best fitness after each generation
    rng: list[Any] | None = None  # random.Random state at the boundary
    seconds: float = 0.0  # time spent evaluating candidates
    baselines: dict[str, float] = field(default_factory=dict)  # method -> fitness of its factors

    def save(self, path: Path, fingerprint: dict[str, Any]) -> None:
        """Atomic write: a crash never leaves a truncated checkpoint."""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"fingerprint": fingerprint, "state": dataclasses.asdict(self)}))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, fingerprint: dict[str, Any]) -> SearchState:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise RopebenchError(f"cannot read search checkpoint {path}: {err}; delete it to restart") from err
        if data.get("fingerprint") != fingerprint:
            raise RopebenchError(
                f"search checkpoint {path} belongs to a different search (model, method, length or "
                "settings differ); delete it or choose another checkpoint path"
            )
        return cls(**data["state"])


def _fingerprint(method: str, spec: RopeSpec, target_length: int, settings: SearchSettings) -> dict:
    """What a checkpoint must agree on. Not `iterations`: it only says when to stop, so a finished
    search can be resumed with more generations; nor `progress` and `baselines`, which change what
    is shown, not what is found."""
    ignored = ("iterations", "progress", "baselines")
    kept = {k: v for k, v in dataclasses.asdict(settings).items() if k not in ignored}
    return {
        "method": method,
        "spec": dataclasses.asdict(spec),
        "target_length": target_length,
        "settings": kept,
    }


def score_baselines(
    model,
    spec: RopeSpec,
    target_length: int,
    methods: tuple[str, ...],
    scorer: Scorer,
    scores: dict[str, float],
) -> bool:
    """Add to `scores` the fitness of each method's analytic factors that it does not hold yet;
    True if any was added."""
    from ropebench.extenders import get_extender
    from ropebench.extenders.patch import apply_scaling

    missing = [name for name in methods if name not in scores]  # others: scored before a resume
    for name in missing:
        apply_scaling(model, get_extender(name).rescale(spec, target_length))
        with torch.inference_mode():
            value = float(scorer(model))
        scores[name] = value if math.isfinite(value) else math.inf
    return bool(missing)


# ---------------------------------------------------------------------------------------------
# The loop shared by both methods.


@dataclass
class _Problem:
    """What distinguishes LongRoPE2 from LongRoPE v1 once the machinery is shared."""

    method: str
    space: SearchSpace
    seeds: Callable[[random.Random], list[Candidate]]  # the initial individuals before mutants


def _evolve(
    problem: _Problem,
    model,
    tokenizer,
    spec: RopeSpec,
    target_length: int,
    settings: SearchSettings,
    checkpoint: Path | None,
    progress: bool,
) -> RopeScaling:
    from tqdm.auto import tqdm

    from ropebench.extenders.patch import apply_scaling

    space = problem.space
    fingerprint = _fingerprint(problem.method, spec, target_length, settings)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.is_file():
        state = SearchState.load(checkpoint, fingerprint)
    else:
        state = SearchState()
    rng = random.Random(settings.seed)
    if state.rng is not None:
        version, internal, gauss = state.rng
        rng.setstate((version, tuple(internal), gauss))
    # Candidates proposed so far; children of the running generation join it as they are drawn.
    seen = set(state.seen)
    scorer = make_scorer(tokenizer, target_length, settings)

    def to_scaling(cand: Candidate, extra: dict[str, Any] | None = None) -> RopeScaling:
        from ropebench.extenders.longrope2 import longrope_scaling

        return longrope_scaling(
            spec,
            target_length,
            space.factors(cand),
            method=problem.method,
            critical_index=cand.critical_index if problem.method == "longrope2" else None,
            provenance="searched",
            extra={"n_hat": settings.n_hat, **(extra or {})},
            mscale=settings.mscale,
        )

    def patch(cand: Candidate) -> None:
        scaling = to_scaling(cand)
        apply_scaling(model, scaling)
        if settings.n_hat:
            from ropebench.extenders.mixed import install_mixed_rotary

            install_mixed_rotary(model, scaling, n_hat=settings.n_hat)

    total = settings.population + settings.iterations * (settings.mutations + settings.crossovers)
    bar = tqdm(total=total, initial=len(state.cache), desc=f"search {problem.method}",
               disable=not (progress and settings.progress), unit="eval")

    def evaluate(cand: Candidate) -> float:
        """Fitness of a candidate; cached values come from before an interruption."""
        if cand.key in state.cache:
            return state.cache[cand.key]
        start = time.perf_counter()
        patch(cand)
        with torch.inference_mode():
            value = float(scorer(model))
        state.seconds += time.perf_counter() - start
        state.cache[cand.key] = value if math.isfinite(value) else math.inf
        if checkpoint is not None:
            state.save(checkpoint, fingerprint)
        bar.update(1)
        best = min(state.cache.values())
        bar.set_postfix(gen=state.generation, best=f"{best:.4g}",
                        evals=len(state.cache), s_per_eval=f"{state.seconds / len(state.cache):.2f}")
        return state.cache[cand.key]

    def draw_mutant(parent: Candidate) -> Candidate | None:
        for _ in range(MAX_TRIES):
            child = mutate(parent, space, rng, settings.mutation_prob)
            if child.key not in seen:
                seen.add(child.key)
                return child
        return None  # the neighbourhood of this parent is exhausted

    def draw_crossover(first: Candidate, second: Candidate) -> Candidate | None:
        for _ in range(CROSSOVER_TRIES):
            child = crossover(first, second, space, rng, settings.crossover_prob)
            if space.valid(child) and child.key not in seen:
                seen.add(child.key)
                return child
        return draw_mutant(first)

    def commit(population: list[Candidate]) -> None:
        """Close a generation: record the boundary state and checkpoint it."""
        state.population = [c.key for c in population]
        state.seen = sorted(seen)
        state.history.append(min(evaluate(c) for c in population))
        version, internal, gauss = rng.getstate()
        state.rng = [version, list(internal), gauss]
        if checkpoint is not None:
            state.save(checkpoint, fingerprint)

    added = score_baselines(model, spec, target_length, settings.baselines, scorer, state.baselines)
    if checkpoint is not None and added:
        state.save(checkpoint, fingerprint)

    if not state.population:
        # Generation 0: the method's seeds, then mutants of random seeds until the population is full.
        population = []
        for cand in problem.seeds(rng):
            if space.valid(cand) and cand.key not in seen and len(population) < settings.population:
                seen.add(cand.key)
                population.append(cand)
        if not population:
            raise RopebenchError("the search space is empty for this model and target length")
        seeds = list(population)
        for _ in range(settings.population - len(population)):
            child = draw_mutant(rng.choice(seeds))
            if child is not None:
                population.append(child)
        for cand in population:
            evaluate(cand)
        commit(population)
    population = [Candidate.from_key(k) for k in state.population]

    while state.generation < settings.iterations:
        parents = sorted(population, key=evaluate)[: settings.parents]
        children: list[Candidate | None] = [
            draw_mutant(rng.choice(parents)) for _ in range(settings.mutations)
        ]
        for _ in range(settings.crossovers):
            if len(parents) >= 2:
                first, second = rng.sample(parents, 2)
                children.append(draw_crossover(first, second))
            else:
                children.append(draw_mutant(parents[0]))
        population = parents + [c for c in children if c is not None]
        for cand in population:
            evaluate(cand)
        state.generation += 1
        commit(population)
    bar.close()

    best = min(population, key=evaluate)
    result = to_scaling(
        best,
        extra={
            "fitness": settings.fitness,
            "best_fitness": evaluate(best),
            "fitness_history": list(state.history),
            "evaluations": len(state.cache),
            "seconds": round(state.seconds, 3),
            "baseline_fitness": {name: state.baselines[name] for name in settings.baselines},
            "settings": dataclasses.asdict(settings),
        },
    )
    patch(best)  # leave the model with the winning factors
    return result


# ---------------------------------------------------------------------------------------------
# The two methods.


def _critical_range(spec: RopeSpec, settings: SearchSettings) -> list[int]:
    """Candidate critical indices: the paper scans d10_tcd..d_tcd; the released code uses d_tcd - 1."""
    from ropebench.extenders.rope import critical_index, critical_index_10

    last = spec.n_pairs - 1
    if settings.critical_index is not None:
        if not 0 <= settings.critical_index <= last:
            raise RopebenchError(
                f"critical_index {settings.critical_index} is outside the model's pairs 0..{last}"
            )
        return [settings.critical_index]
    d_tcd = min(max(critical_index(spec), 0), last)
    if settings.mode == "released":
        return [max(d_tcd - 1, 0)]
    d10 = min(max(critical_index_10(spec), 0), d_tcd)
    return list(range(d10, d_tcd + 1))


def search_longrope2(
    model,
    tokenizer,
    spec: RopeSpec,
    target_length: int,
    settings: SearchSettings | None = None,
    *,
    checkpoint: Path | None = None,
    progress: bool = True,
) -> RopeScaling:
    """LongRoPE2: factors of pairs from the critical index searched in [s, 2s], NTK below."""
    settings = settings or SearchSettings()
    s = target_length / spec.window
    if s <= 1:
        raise RopebenchError(
            f"target length {target_length} must exceed the pretrained window {spec.window}"
        )
    space = SearchSpace(spec, low=_grid_ceil(s), high=_grid_floor(2 * s), ntk_lower_group=True)
    indices = _critical_range(spec, settings)

    def paper_seeds(rng: random.Random) -> list[Candidate]:
        # One individual per candidate critical index: every searched factor = an integer s' in [s, 2s].
        seeds = []
        for c in indices:
            s_prime = rng.randint(math.ceil(s), math.floor(2 * s))
            seeds.append(space.snap(c, [float(s_prime)] * spec.n_pairs))
        return seeds

    def released_seeds(rng: random.Random) -> list[Candidate]:
        # microsoft/LongRoPE (longrope2 branch): sigma = s * (1 + k/8), sigma + 0.1*(i - c) above c.
        c = indices[0]
        return [
            space.snap(c, [s * (1 + k / 8) + 0.1 * (i - c) for i in range(spec.n_pairs)])
            for k in range(8)
        ]

    seeds = paper_seeds if settings.mode == "paper" else released_seeds
    problem = _Problem("longrope2", space, seeds)
    return _evolve(problem, model, tokenizer, spec, target_length, settings, checkpoint, progress)


def search_longrope(
    model,
    tokenizer,
    spec: RopeSpec,
    target_length: int,
    settings: SearchSettings | None = None,
    *,
    checkpoint: Path | None = None,
    progress: bool = True,
) -> RopeScaling:
    """LongRoPE v1: every pair searched in [1, 1.25 s], seeded with PI, NTK and YaRN factors.

    Without settings the fitness is the paper's plain perplexity.
    """
    from ropebench.extenders.base import get_extender

    settings = settings or SearchSettings(fitness="ppl")
    s = target_length / spec.window
    if s <= 1:
        raise RopebenchError(
            f"target length {target_length} must exceed the pretrained window {spec.window}"
        )
    space = SearchSpace(spec, low=_grid_ceil(1.0), high=_grid_floor(1.25 * s), ntk_lower_group=False)

    def seeds(rng: random.Random) -> list[Candidate]:
        return [
            space.snap(0, list(get_extender(name).rescale(spec, target_length).long_factor))
            for name in ("pi", "ntk", "yarn")
        ]

    problem = _Problem("longrope", space, seeds)
    return _evolve(problem, model, tokenizer, spec, target_length, settings, checkpoint, progress)


def search_output(scaling: RopeScaling) -> dict[str, Any]:
    """The JSON a search writes: `RopeScaling.to_dict()` plus the search record at top level."""
    data = scaling.to_dict()
    keys = ("fitness", "best_fitness", "fitness_history", "baseline_fitness", "evaluations",
            "seconds", "settings")
    for key in keys:
        if key in scaling.extra:
            data[key] = scaling.extra[key]
    return data

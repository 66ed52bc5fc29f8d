"""Evolutionary search of per-pair RoPE factors: LongRoPE2 (arXiv 2502.20082) and LongRoPE (2402.13753).

Generation 0 holds `initial` individuals [2 x 64, the released code's 128]: the method's seeds
(LongRoPE2: strictly increasing ramps from every candidate critical index), then mutants of them.
One generation (paper settings in brackets): keep the best `parents` [32] of the population, add
`mutations` [16] mutants and `crossovers` [16] children, evaluate only the new vectors. The state
is written to a JSON checkpoint after every evaluation, so an interrupted search resumes where it
stopped and ends exactly where an uninterrupted run with the same seed would. Candidates are
scored by the `Scorer` the harness hands in (candidate scaling -> fitness, lower is better).

A scorer with `score_many` (several processes, `ropebench.run.distributed.RankScorer`) gets the
new candidates of a generation `width` at a time and the state is written after each such round;
each candidate is still scored whole by one process, so the factors and the fitness history are
those of one process. Where the scorer says `writes_checkpoints = False`, nothing is written.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.methods.base import Scorer, batch_scorer
from ropebench.methods.evolution.settings import EvolutionSettings
from ropebench.methods.evolution.space import (
    Candidate,
    SearchSpace,
    crossover,
    grid_ceil,
    grid_floor,
    mutate,
)
from ropebench.methods.evolution.state import SearchState, fingerprint_of
from ropebench.rope.math import critical_index, critical_index_10, scale_of
from ropebench.rope.scaling import RopeScaling, SearchRecord, longrope_scaling
from ropebench.rope.spec import RopeSpec

MAX_TRIES = 100  # attempts to draw an unseen mutant before giving up on that child
CROSSOVER_TRIES = 20  # LongRoPE2: after 20 invalid crossovers, mutate the first parent instead


def score_baselines(
    spec: RopeSpec,
    target_length: int,
    methods: tuple[str, ...],
    scorer: Scorer,
    scores: dict[str, float],
) -> bool:
    """Add to `scores` the fitness of each method's analytic factors that it does not hold yet;
    True if any was added."""
    from ropebench.methods.base import get_extender

    missing = [name for name in methods if name not in scores]  # others: scored before a resume
    scalings = [get_extender(name).rescale(spec, target_length) for name in missing]
    many = batch_scorer(scorer)
    values = many(scalings) if many is not None and missing else [scorer(s) for s in scalings]
    for name, value in zip(missing, values, strict=True):
        value = float(value)
        scores[name] = value if math.isfinite(value) else math.inf
    return bool(missing)


@dataclass
class Problem:
    """What distinguishes LongRoPE2 from LongRoPE v1 once the machinery is shared."""

    method: str
    space: SearchSpace
    seeds: Callable[[random.Random], list[Candidate]]  # the initial individuals before mutants


class Evolution:
    """One search: `setup` (state, resumed from a checkpoint), `seed` (generation 0), `step` (one
    generation), `checkpoint`; `run` does all of it and returns the best scaling."""

    def __init__(self, problem: Problem, spec: RopeSpec, target_length: int, scorer: Scorer,
                 settings: EvolutionSettings, checkpoint: Path | None) -> None:
        self.problem, self.space, self.spec = problem, problem.space, spec
        self.target_length, self.scorer, self.settings = target_length, scorer, settings
        self.path = Path(checkpoint) if checkpoint is not None else None
        self.many = batch_scorer(scorer)
        self.width = max(int(getattr(scorer, "width", 1)), 1)
        self.writes = bool(getattr(scorer, "writes_checkpoints", True))
        self.setup()

    # -- state -----------------------------------------------------------------------------

    def setup(self) -> None:
        """The state to continue from: the checkpoint's when it exists, else a fresh one."""
        settings = self.settings
        self.fingerprint = fingerprint_of(self.problem.method, self.spec, self.target_length,
                                          settings, getattr(self.scorer, "identity", None))
        if self.path is not None and self.path.is_file():
            self.state = SearchState.load(self.path, self.fingerprint)
        else:
            self.state = SearchState()
        self.rng = random.Random(settings.seed)
        if self.state.rng is not None:
            version, internal, gauss = self.state.rng
            self.rng.setstate((version, tuple(internal), gauss))
        # Candidates proposed so far; children of the running generation join it as they are drawn.
        self.seen = set(self.state.seen)
        self.total = settings.evaluations()
        self.timed: list[float] = []  # the first scoring call, for the time-to-go line

    def checkpoint(self) -> None:
        if self.path is not None and self.writes:
            self.state.save(self.path, self.fingerprint)

    def commit(self, population: list[Candidate]) -> None:
        """Close a generation: record the boundary state and checkpoint it."""
        state = self.state
        state.population = [c.key for c in population]
        state.seen = sorted(self.seen)
        state.history.append(min(self.evaluate(c) for c in population))
        version, internal, gauss = self.rng.getstate()
        state.rng = [version, list(internal), gauss]
        self.checkpoint()

    # -- scoring ---------------------------------------------------------------------------

    def to_scaling(self, cand: Candidate, search: SearchRecord | None = None) -> RopeScaling:
        method, settings = self.problem.method, self.settings
        return longrope_scaling(
            self.spec, self.target_length, self.space.factors(cand), method=method,
            critical_index=cand.critical_index if method == "longrope2" else None,
            provenance="searched", extra={"n_hat": settings.n_hat}, search=search,
            mscale=settings.mscale,
        )

    def record(self, cands: list[Candidate], values: list[float], start: float) -> None:
        took = time.perf_counter() - start
        state = self.state
        state.seconds += took
        for cand, value in zip(cands, values, strict=True):
            value = float(value)
            state.cache[cand.key] = value if math.isfinite(value) else math.inf
        self.checkpoint()
        self.bar.update(len(cands))
        if not self.timed and self.settings.progress:
            self.timed.append(took)
            each, left = took / len(cands), max(self.total - len(state.cache), 0)
            self.bar.write(f"search {self.problem.method}: one candidate takes {each:.1f} s; "
                           f"about {left * each / 60:.1f} min for the {left} left")
        self.bar.set_postfix(gen=state.generation, best=f"{min(state.cache.values()):.4g}",
                             evals=len(state.cache),
                             s_per_eval=f"{state.seconds / len(state.cache):.2f}")

    def evaluate(self, cand: Candidate) -> float:
        """Fitness of a candidate; cached values come from before an interruption."""
        if cand.key not in self.state.cache:
            start = time.perf_counter()
            self.record([cand], [self.scorer(self.to_scaling(cand))], start)
        return self.state.cache[cand.key]

    def evaluate_all(self, cands: list[Candidate]) -> None:
        """Score the uncached candidates, `width` per call of a batch scorer (else one by one)."""
        todo = list({c.key: c for c in cands if c.key not in self.state.cache}.values())
        if self.many is None:
            for cand in todo:
                self.evaluate(cand)
            return
        for i in range(0, len(todo), self.width):
            chunk = todo[i : i + self.width]
            start = time.perf_counter()
            self.record(chunk, self.many([self.to_scaling(c) for c in chunk]), start)

    # -- variation -------------------------------------------------------------------------

    def draw_mutant(self, parent: Candidate) -> Candidate | None:
        for _ in range(MAX_TRIES):
            child = mutate(parent, self.space, self.rng, self.settings.mutation_prob)
            if child.key not in self.seen and self.space.valid(child):
                self.seen.add(child.key)
                return child
        return None  # the neighbourhood of this parent is exhausted

    def draw_crossover(self, first: Candidate, second: Candidate) -> Candidate | None:
        for _ in range(CROSSOVER_TRIES):
            child = crossover(first, second, self.space, self.rng, self.settings.crossover_prob)
            if self.space.valid(child) and child.key not in self.seen:
                self.seen.add(child.key)
                return child
        return self.draw_mutant(first)

    # -- generations -----------------------------------------------------------------------

    def seed(self) -> None:
        """Generation 0: the method's seeds, then mutants of random seeds up to `initial`."""
        size = self.settings.initial
        population: list[Candidate] = []
        for cand in self.problem.seeds(self.rng):
            if self.space.valid(cand) and cand.key not in self.seen and len(population) < size:
                self.seen.add(cand.key)
                population.append(cand)
        if not population:
            raise RopebenchError("the search space is empty for this model and target length")
        seeds = list(population)
        for _ in range(size - len(population)):
            child = self.draw_mutant(self.rng.choice(seeds))
            if child is not None:
                population.append(child)
        self.evaluate_all(population)
        self.commit(population)

    def step(self, population: list[Candidate]) -> list[Candidate]:
        """One generation: the best `parents`, their mutants and crossovers."""
        settings, rng = self.settings, self.rng
        parents = sorted(population, key=self.evaluate)[: settings.parents]
        children = [self.draw_mutant(rng.choice(parents)) for _ in range(settings.mutations)]
        for _ in range(settings.crossovers):
            if len(parents) >= 2:
                first, second = rng.sample(parents, 2)
                children.append(self.draw_crossover(first, second))
            else:
                children.append(self.draw_mutant(parents[0]))
        population = parents + [c for c in children if c is not None]
        self.evaluate_all(population)
        self.state.generation += 1
        self.commit(population)
        return population

    def run(self) -> RopeScaling:
        from tqdm.auto import tqdm

        settings, state = self.settings, self.state
        self.bar = tqdm(total=self.total, initial=len(state.cache),
                        desc=f"search {self.problem.method}", disable=not settings.progress,
                        unit="eval")
        if score_baselines(self.spec, self.target_length, settings.baselines, self.scorer,
                           state.baselines):
            self.checkpoint()
        if not state.population:
            self.seed()
        population = [Candidate.from_key(k) for k in state.population]
        while state.generation < settings.iterations:
            population = self.step(population)
        self.bar.close()
        return self.result(min(population, key=self.evaluate))

    def record_of(self, best: Candidate) -> SearchRecord:
        state, settings = self.state, self.settings
        return SearchRecord(
            fitness=settings.fitness,
            best_fitness=self.evaluate(best),
            fitness_history=list(state.history),
            evaluations=len(state.cache),
            seconds=round(state.seconds, 3),
            baseline_fitness={name: state.baselines[name] for name in settings.baselines},
            settings=dataclasses.asdict(settings),
        )

    def result(self, best: Candidate) -> RopeScaling:
        """The best candidate as a scaling with its `SearchRecord`."""
        return self.to_scaling(best, search=self.record_of(best))


def _critical_range(spec: RopeSpec, settings: EvolutionSettings) -> list[int]:
    """Candidate critical indices: the paper scans d10_tcd..d_tcd; the released code uses d_tcd - 1."""
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


# The released code's 8 seed temperatures sigma = s (1 + k/8), in an order that spreads any prefix
# over the range (a small initial population keeps every critical index and a spread of sigmas).
SIGMA_STEPS = (0, 4, 2, 6, 1, 5, 3, 7)


def ramp_seeds(space: SearchSpace, indices: list[int], s: float) -> list[Candidate]:
    """Strictly increasing ramps sigma + 0.1 (i - c) from each critical index c, sigma = s(1 + k/8).

    Every candidate index gets every sigma (k outer, c inner), so the choice of c is judged on
    the same seeds for every c and is never tied to one random value per index.
    """
    n = space.spec.n_pairs
    return [
        space.snap(c, [s * (1 + k / 8) + 0.1 * (i - c) for i in range(n)], strict=True)
        for k in SIGMA_STEPS
        for c in indices
    ]


def longrope2_problem(spec: RopeSpec, target_length: int,
                      settings: EvolutionSettings) -> Problem:
    """LongRoPE2's space and seeds for `settings` (mode, space, lower group)."""
    from ropebench.methods.base import get_extender

    s = scale_of(spec, target_length)
    strict = settings.mode == "released"
    if settings.space == "all":  # the paper's ablation: no critical split, every pair searched
        space = SearchSpace(spec, low=grid_ceil(1.0), high=grid_floor(2 * s),
                            ntk_lower_group=False, strict=strict)
        analytic = [get_extender(name).rescale(spec, target_length).long_factor
                    for name in ("pi", "ntk", "yarn")]
        return Problem("longrope2", space, lambda rng: [space.snap(0, list(f)) for f in analytic])
    lower = None
    if settings.lower == "yarn":
        lower = tuple(get_extender("yarn").rescale(spec, target_length).long_factor)
    space = SearchSpace(spec, low=grid_ceil(s), high=grid_floor(2 * s), ntk_lower_group=True,
                        strict=strict, fixed_lower=lower)
    indices = _critical_range(spec, settings)
    return Problem("longrope2", space, lambda rng: ramp_seeds(space, indices, s))


def search_longrope2(
    spec: RopeSpec,
    target_length: int,
    scorer: Scorer,
    settings: EvolutionSettings | None = None,
    *,
    checkpoint: Path | None = None,
) -> RopeScaling:
    """LongRoPE2: factors of pairs from the critical index searched in [s, 2s], NTK below."""
    settings = settings or EvolutionSettings()
    problem = longrope2_problem(spec, target_length, settings)
    return Evolution(problem, spec, target_length, scorer, settings, checkpoint).run()


def longrope_problem(spec: RopeSpec, target_length: int,
                     settings: EvolutionSettings) -> Problem:
    """LongRoPE v1: every pair in [1, 1.25 s], seeded with PI, NTK and YaRN factors."""
    from ropebench.methods.base import get_extender

    s = scale_of(spec, target_length)
    space = SearchSpace(spec, low=grid_ceil(1.0), high=grid_floor(1.25 * s),
                        ntk_lower_group=False, strict=settings.mode == "released")
    analytic = [get_extender(name).rescale(spec, target_length).long_factor
                for name in ("pi", "ntk", "yarn")]
    return Problem("longrope", space, lambda rng: [space.snap(0, list(f)) for f in analytic])


def search_longrope(
    spec: RopeSpec,
    target_length: int,
    scorer: Scorer,
    settings: EvolutionSettings | None = None,
    *,
    checkpoint: Path | None = None,
) -> RopeScaling:
    """LongRoPE v1: every pair searched in [1, 1.25 s], seeded with PI, NTK and YaRN factors.

    Without settings the fitness is the paper's plain perplexity.
    """
    settings = settings or EvolutionSettings(fitness="ppl")
    problem = longrope_problem(spec, target_length, settings)
    return Evolution(problem, spec, target_length, scorer, settings, checkpoint).run()


def search_output(scaling: RopeScaling) -> dict[str, Any]:
    """The JSON a search writes: `RopeScaling.to_dict()` plus the search record at top level."""
    data = scaling.to_dict()
    return {**data, **(scaling.search.to_extra() if scaling.search is not None else {})}

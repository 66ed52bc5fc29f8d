"""Evolutionary search of per-pair RoPE factors: LongRoPE2 (arXiv 2502.20082) and LongRoPE (2402.13753).

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
from ropebench.rope.scaling import RopeScaling, longrope_scaling
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
class _Problem:
    """What distinguishes LongRoPE2 from LongRoPE v1 once the machinery is shared."""

    method: str
    space: SearchSpace
    seeds: Callable[[random.Random], list[Candidate]]  # the initial individuals before mutants


def _evolve(
    problem: _Problem,
    spec: RopeSpec,
    target_length: int,
    scorer: Scorer,
    settings: EvolutionSettings,
    checkpoint: Path | None,
) -> RopeScaling:
    from tqdm.auto import tqdm

    space = problem.space
    fingerprint = fingerprint_of(
        problem.method, spec, target_length, settings, getattr(scorer, "identity", None)
    )
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.is_file():
        state = SearchState.load(checkpoint, fingerprint)
    else:
        state = SearchState()
    many = batch_scorer(scorer)
    width = max(int(getattr(scorer, "width", 1)), 1)
    writes = bool(getattr(scorer, "writes_checkpoints", True))

    def save() -> None:
        if checkpoint is not None and writes:
            state.save(checkpoint, fingerprint)
    rng = random.Random(settings.seed)
    if state.rng is not None:
        version, internal, gauss = state.rng
        rng.setstate((version, tuple(internal), gauss))
    # Candidates proposed so far; children of the running generation join it as they are drawn.
    seen = set(state.seen)

    def to_scaling(cand: Candidate, extra: dict[str, Any] | None = None) -> RopeScaling:
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

    total = settings.population + settings.iterations * (settings.mutations + settings.crossovers)
    bar = tqdm(total=total, initial=len(state.cache), desc=f"search {problem.method}",
               disable=not settings.progress, unit="eval")

    timed: list[float] = []  # the first scoring call of this process, for the time-to-go line

    def record(cands: list[Candidate], values: list[float], start: float) -> None:
        took = time.perf_counter() - start
        state.seconds += took
        for cand, value in zip(cands, values, strict=True):
            value = float(value)
            state.cache[cand.key] = value if math.isfinite(value) else math.inf
        save()
        bar.update(len(cands))
        if not timed and settings.progress:
            timed.append(took)
            each, left = took / len(cands), max(total - len(state.cache), 0)
            bar.write(f"search {problem.method}: one candidate takes {each:.1f} s; about "
                      f"{left * each / 60:.1f} min for the {left} left")
        best = min(state.cache.values())
        bar.set_postfix(gen=state.generation, best=f"{best:.4g}",
                        evals=len(state.cache), s_per_eval=f"{state.seconds / len(state.cache):.2f}")

    def evaluate(cand: Candidate) -> float:
        """Fitness of a candidate; cached values come from before an interruption."""
        if cand.key not in state.cache:
            start = time.perf_counter()
            record([cand], [scorer(to_scaling(cand))], start)
        return state.cache[cand.key]

    def evaluate_all(cands: list[Candidate]) -> None:
        """Score the uncached candidates, `width` per call of a batch scorer (else one by one)."""
        todo = list({c.key: c for c in cands if c.key not in state.cache}.values())
        if many is None:
            for cand in todo:
                evaluate(cand)
            return
        for i in range(0, len(todo), width):
            chunk = todo[i : i + width]
            start = time.perf_counter()
            record(chunk, many([to_scaling(c) for c in chunk]), start)

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
        save()

    added = score_baselines(spec, target_length, settings.baselines, scorer, state.baselines)
    if added:
        save()

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
        evaluate_all(population)
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
        evaluate_all(population)
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
    return result


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
    s = scale_of(spec, target_length)
    space = SearchSpace(spec, low=grid_ceil(s), high=grid_floor(2 * s), ntk_lower_group=True)
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
    return _evolve(problem, spec, target_length, scorer, settings, checkpoint)


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
    from ropebench.methods.base import get_extender

    settings = settings or EvolutionSettings(fitness="ppl")
    s = scale_of(spec, target_length)
    space = SearchSpace(spec, low=grid_ceil(1.0), high=grid_floor(1.25 * s), ntk_lower_group=False)

    def seeds(rng: random.Random) -> list[Candidate]:
        return [
            space.snap(0, list(get_extender(name).rescale(spec, target_length).long_factor))
            for name in ("pi", "ntk", "yarn")
        ]

    problem = _Problem("longrope", space, seeds)
    return _evolve(problem, spec, target_length, scorer, settings, checkpoint)


def search_output(scaling: RopeScaling) -> dict[str, Any]:
    """The JSON a search writes: `RopeScaling.to_dict()` plus the search record at top level."""
    data = scaling.to_dict()
    keys = ("fitness", "best_fitness", "fitness_history", "baseline_fitness", "evaluations",
            "seconds", "settings")
    for key in keys:
        if key in scaling.extra:
            data[key] = scaling.extra[key]
    return data

"""Fitness functions: a name -> a scorer that a method's search calls on candidate scalings.

A factory builds the scorer once for a backend (documents tokenized, tokens fixed); the scorer
applies a candidate's RoPE to the backend and returns a number, lower is better. Its `identity`
(the backend's model plus the fitness documents) goes into search checkpoints, so a checkpoint
written on another model or other documents is never resumed.

Third-party fitness functions register through the entry-point group `ropebench.fitness`
(the object is a factory `(backend, length, settings) -> Scorer`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ropebench.backends.base import Backend
from ropebench.methods.base import SearchSettings
from ropebench.registry import Registry
from ropebench.rope.scaling import RopeScaling

Measure = Callable[[Backend], float]  # the backend as it is patched now -> fitness
FitnessFactory = Callable[[Backend, int, SearchSettings], Measure]

FITNESS: Registry[FitnessFactory] = Registry(
    "fitness", "ropebench.fitness", plural="fitness functions"
)


class BackendScorer:
    """`scorer(scaling)`: patch the backend with `scaling`, then measure it."""

    def __init__(self, backend: Backend, measure: Measure, identity: dict[str, Any]) -> None:
        self.backend, self.measure = backend, measure
        # Not the RoPE the model is patched with now: every candidate replaces it (a previous
        # search may have left its last candidate in), and the pretrained RoPE is in the spec.
        live = ("rope_parameters", "max_position_embeddings")
        self.identity = {"backend": {k: v for k, v in backend.identity.items() if k not in live},
                         **identity}

    def __call__(self, scaling: RopeScaling) -> float:
        self.backend.apply_scaling(scaling)
        with torch.inference_mode():
            value = float(self.measure(self.backend))
        return value if math.isfinite(value) else math.inf


def make_scorer(backend: Backend, length: int, settings: SearchSettings) -> BackendScorer:
    """The scorer of `settings.fitness` at `length` on `backend`."""
    factory = FITNESS.get(settings.fitness)
    identity = {"fitness": settings.fitness, "length": length, "documents": settings.documents,
                "haystack": settings.haystack, "seed": settings.seed,
                "needle_position": settings.needle_position}
    return BackendScorer(backend, factory(backend, length, settings), identity)


def baseline_spread(backend: Backend, spec, length: int, settings: SearchSettings,
                    methods: tuple[str, ...],
                    known: dict[str, float] | None = None) -> dict[str, list[float]]:
    """Each method's analytic fitness on `settings.spread_sets` disjoint document sets of
    `settings.documents` each, the search's own set first (taken from `known`, the search's
    baseline fitness, where it holds the method): how much a win on one set means.

    Only `needle_ppl` numbers its documents (`first`); other fitness functions give {}."""
    from ropebench.methods.base import get_extender
    from ropebench.tasks.needle_ppl import NeedlePPL

    if settings.fitness != "needle_ppl" or settings.spread_sets == 0 or not methods:
        return {}
    sets = [
        NeedlePPL(backend.tokenizer, length, settings.documents, seed=settings.seed,
                  haystack=settings.haystack, needle_position=settings.needle_position,
                  first=k * settings.documents)
        for k in range(settings.spread_sets)
    ]
    known = known or {}
    spread: dict[str, list[float]] = {}
    for name in methods:
        backend.apply_scaling(get_extender(name).rescale(spec, length))
        with torch.inference_mode():
            spread[name] = [
                float(known[name]) if k == 0 and name in known else float(docs.score(backend))
                for k, docs in enumerate(sets)
            ]
    return spread


def spread_lines(spread: dict[str, list[float]], documents: int) -> list[str]:
    """One line per baseline: its fitness on each disjoint set, min and max."""
    return [
        f"  {name}: {min(values):.4g}..{max(values):.4g} over {len(values)} disjoint sets of "
        f"{documents} documents ({', '.join(f'{v:.4g}' for v in values)}; the first is the search's)"
        for name, values in spread.items()
    ]


@FITNESS.register("needle_ppl")
def needle_ppl(backend: Backend, length: int, settings: SearchSettings) -> Measure:
    """LongRoPE2's fitness: perplexity of the needle's answer tokens only."""
    from ropebench.tasks.needle_ppl import NeedlePPL

    return NeedlePPL(
        backend.tokenizer, length, settings.documents, seed=settings.seed,
        haystack=settings.haystack, needle_position=settings.needle_position,
    ).score


@FITNESS.register("ppl")
def plain_ppl(backend: Backend, length: int, settings: SearchSettings) -> Measure:
    """LongRoPE v1's fitness (and the LongRoPE2 ablation): perplexity of every token."""
    from ropebench.tasks.ppl import perplexity

    def measure(patched: Backend) -> float:
        return perplexity(patched, length, documents=settings.documents, haystack=settings.haystack)

    return measure

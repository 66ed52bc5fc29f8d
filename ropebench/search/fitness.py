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
                "haystack": settings.haystack, "seed": settings.seed}
    return BackendScorer(backend, factory(backend, length, settings), identity)


@FITNESS.register("needle_ppl")
def needle_ppl(backend: Backend, length: int, settings: SearchSettings) -> Measure:
    """LongRoPE2's fitness: perplexity of the needle's answer tokens only."""
    from ropebench.tasks.needle_ppl import NeedlePPL

    return NeedlePPL(
        backend.tokenizer, length, settings.documents, seed=settings.seed, haystack=settings.haystack
    ).score


@FITNESS.register("ppl")
def plain_ppl(backend: Backend, length: int, settings: SearchSettings) -> Measure:
    """LongRoPE v1's fitness (and the LongRoPE2 ablation): perplexity of every token."""
    from ropebench.tasks.ppl import perplexity

    def measure(patched: Backend) -> float:
        return perplexity(patched, length, documents=settings.documents, haystack=settings.haystack)

    return measure

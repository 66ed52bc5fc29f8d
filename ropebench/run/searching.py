"""The one search setup behind `ropebench search` and a plan's scaling stage.

A search scores candidate scalings on a backend that changes its RoPE in place (the HF backend):
the fitness function becomes a scorer, the scorer is dealt across the processes of a
data-parallel job, the method's `search` runs from its checkpoint, and rank 0 adds each
baseline's fitness on disjoint document sets (how much a win on the search's own documents means).
"""

from __future__ import annotations

from pathlib import Path

from ropebench.backends.base import Backend
from ropebench.methods.base import Extender, SearchSettings
from ropebench.rope.scaling import RopeScaling
from ropebench.rope.spec import RopeSpec
from ropebench.run.distributed import RankScorer, barrier


def search_scaling(backend: Backend, extender: Extender, spec: RopeSpec, target_length: int,
                   settings: SearchSettings, checkpoint: Path) -> RopeScaling:
    """The method's searched scaling for `target_length`, resumed from `checkpoint`; on rank 0
    its search record also holds `baseline_spread`."""
    from ropebench.search.fitness import baseline_spread, make_scorer

    scorer = make_scorer(backend, target_length, settings)
    if backend.world_size > 1:  # candidates dealt across processes; rank 0 checkpoints
        scorer = RankScorer(scorer, backend.rank, backend.world_size)
    scaling = extender.search(spec, target_length, scorer, settings, checkpoint=checkpoint)
    barrier(backend.world_size)
    record = scaling.search
    if backend.rank == 0 and record is not None:
        baselines = tuple(getattr(settings, "baselines", ()))
        record.baseline_spread = baseline_spread(backend, spec, target_length, settings,
                                                 baselines, known=record.baseline_fitness)
    return scaling

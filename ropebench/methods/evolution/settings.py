"""The settings of an evolutionary factor search (LongRoPE, LongRoPE2); defaults are LongRoPE2's."""

from __future__ import annotations

from dataclasses import dataclass

from ropebench.errors import RopebenchError
from ropebench.methods.base import SearchSettings
from ropebench.rope.math import check_mscale
from ropebench.settings import setting, validate


@dataclass
class EvolutionSettings(SearchSettings):
    """Budgets and choices of one evolutionary search. Defaults are the LongRoPE2 paper's."""

    population: int = setting(64, min=1)
    # Individuals of generation 0 (None: 2 x population, as the released code's 128 for 64).
    initial: int | None = setting(None, min=1)
    iterations: int = setting(40, min=0)
    # None: the paper's proportions of the population (32 / 16 / 16 of 64).
    parents: int | None = setting(None, min=1)
    mutations: int | None = setting(None, min=0)
    crossovers: int | None = setting(None, min=0)
    mutation_prob: float = setting(0.3, min=0, max=1)
    crossover_prob: float = setting(0.15, min=0, max=1)
    # "paper": candidate critical indices d10_tcd..d_tcd, non-decreasing factors; "released": the
    # one index d_tcd - 1, strictly increasing factors. Both seed ramps sigma + 0.1 (i - c).
    mode: str = setting("paper", choices=("paper", "released"))
    # LongRoPE2's space: "critical" (pairs below c follow the lower group, pairs from c on are
    # searched in [s, 2s]) or "all" (the paper's ablation: every pair searched in [1, 2s]).
    space: str = setting("critical", choices=("critical", "all"))
    # The lower group under a searched upper group: "ntk" f_c^(i/c) (the paper) or "yarn" (YaRN's
    # factors for the pairs below c, an ablation).
    lower: str = setting("ntk", choices=("ntk", "yarn"))
    critical_index: int | None = setting(None, min=0)  # fixes the critical index (default: `mode`)
    # The candidates' attention temperature: "longrope" (the paper's models) or "yarn" (an option
    # of the released code); see `longrope_scaling`.
    mscale: str = "longrope"
    # LongRoPE v1: the first n_hat positions keep the original RoPE during the search. Recorded in
    # the result's `extra`; transformers' longrope has no such option, so exported models ignore it.
    n_hat: int = setting(0, min=0)
    # Analytic methods scored once on the fitness documents, so a result says whether the search
    # beat them on the very documents it optimised. They take no part in the search.
    baselines: tuple[str, ...] = ("pi", "ntk", "yarn")

    def evaluations(self) -> int:
        return self.initial + self.iterations * (self.mutations + self.crossovers)

    def __post_init__(self) -> None:
        quarter = max(self.population // 4, 1)
        if self.initial is None:
            self.initial = 2 * self.population
        if self.parents is None:
            self.parents = max(self.population // 2, 1)
        if self.mutations is None:
            self.mutations = quarter
        if self.crossovers is None:
            self.crossovers = quarter
        validate(self, "search")
        if self.parents > self.population:
            raise RopebenchError(
                f"parents ({self.parents}) cannot exceed the population ({self.population})"
            )
        check_mscale(self.mscale)
        self.baselines = tuple(self.baselines)  # a plan's YAML gives a list
        from ropebench.methods.base import get_extender

        for name in self.baselines:  # fail before a model is loaded, not after
            try:
                get_extender(name)
            except RopebenchError as err:
                raise RopebenchError(f"search baseline: {err}") from err

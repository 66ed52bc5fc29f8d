"""LongRoPE2's search as its authors run it, and its needle-driven fitness.

- every gene can move: from a constant seed, two generations give the upper factors more than one
  distinct interior value (a neighbour-bounded mutation under a non-decreasing rule cannot);
- known landscapes: a smooth fitness whose minimiser is a chosen monotone vector is found to a
  stated tolerance in a stated budget, in LongRoPE2's space (critical index included) and in
  LongRoPE v1's;
- the seeds: strictly increasing ramps sigma + 0.1 (i - c) from every candidate critical index,
  2P initial individuals;
- the fitness: exp(mean NLL) over documents, scored on the answer's digits only.
"""

from __future__ import annotations

import math
import random
from types import SimpleNamespace

import pytest

from ropebench.cli.main import main
from ropebench.methods.evolution.ga import (
    SIGMA_STEPS,
    Evolution,
    Problem,
    longrope2_problem,
    search_longrope,
    search_longrope2,
)
from ropebench.methods.evolution.settings import EvolutionSettings
from ropebench.methods.evolution.space import GRID, Candidate, SearchSpace, mutate
from ropebench.rope.math import critical_index, critical_index_10, longrope2_factors
from ropebench.rope.spec import RopeSpec
from ropebench.tasks.needle_ppl import NeedlePPL, answer_tokens, fitness_of

# The reference model's RoPE: 32 pairs, base 10000, window 512; d_tcd = 16, d10_tcd = 8.
SPEC = RopeSpec(base=10000.0, head_dim=64, rotary_dim=64, window=512)
TARGET = 4096  # s = 8


def quiet(**kw) -> EvolutionSettings:
    return EvolutionSettings(baselines=(), progress=False, spread_sets=0, **kw)


def distance_to(target):
    """A smooth fitness: squared distance of all factors to `target` (minimum 0 at `target`)."""
    return lambda scaling: sum((a - b) ** 2 for a, b in zip(scaling.long_factor, target,
                                                            strict=True))


def test_constant_seed_interior_moves_within_two_generations():
    space = SearchSpace(SPEC, low=800, high=1600, ntk_lower_group=True)
    c = critical_index(SPEC)
    constant = Candidate(c, (1200,) * (SPEC.n_pairs - c))
    ramp = [8 + 0.3 * i for i in range(SPEC.n_pairs)]
    problem = Problem("longrope2", space, lambda rng: [constant])
    settings = quiet(population=8, iterations=2, critical_index=c)
    search = Evolution(problem, SPEC, TARGET, distance_to(ramp), settings, None)
    search.run()
    population = [Candidate.from_key(k) for k in search.state.population]
    assert search.state.generation == 2
    interiors = [set(cand.genes[1:-1]) for cand in population]
    assert max(len(values) for values in interiors) > 1
    assert any(g != 1200 for values in interiors for g in values)
    # The best after two generations already left the seed's plateau.
    best = min(population, key=search.evaluate)
    assert len(set(best.genes[1:-1])) > 1


def test_mutation_splits_a_run_and_keeps_the_vector_valid():
    space = SearchSpace(SPEC, low=800, high=1600, ntk_lower_group=True)
    rng = random.Random(0)
    cand = Candidate(16, (1000, 1200, 1200, 1200, 1200, 1400) + (1500,) * 10)
    moved = set()
    for _ in range(200):
        child = mutate(cand, space, rng, 0.3)
        assert space.valid(child)
        moved |= {j for j, (a, b) in enumerate(zip(cand.genes, child.genes, strict=True)) if a != b}
    assert moved == set(range(len(cand.genes)))  # every gene, interiors of runs included


def test_strict_mode_keeps_every_candidate_strictly_increasing():
    seen = []

    def fitness(scaling):
        seen.append(scaling.long_factor)
        return sum(scaling.long_factor)

    settings = quiet(population=6, iterations=3, mode="released")
    result = search_longrope2(SPEC, TARGET, fitness, settings)
    c = critical_index(SPEC) - 1  # the released code's index
    assert result.critical_index == c
    assert len(seen) == settings.evaluations() == 2 * 6 + 3 * (1 + 1)
    for factors in seen:
        upper = factors[c:]
        assert all(b - a >= GRID - 1e-9 for a, b in zip(upper, upper[1:], strict=False))
        assert 8 - 1e-9 <= min(upper) and max(upper) <= 16 + 1e-9  # the last gene within 2s


def test_ramp_seeds_cover_every_critical_index_with_every_sigma():
    settings = quiet(population=64)
    problem = longrope2_problem(SPEC, TARGET, settings)
    seeds = problem.seeds(random.Random(0))
    indices = list(range(critical_index_10(SPEC), critical_index(SPEC) + 1))
    assert len(seeds) == len(SIGMA_STEPS) * len(indices) <= settings.initial == 128
    for k, start in enumerate(range(0, len(seeds), len(indices))):
        group = seeds[start : start + len(indices)]
        assert [cand.critical_index for cand in group] == indices
        sigma = 8 * (1 + SIGMA_STEPS[k] / 8)
        for cand in group:
            assert cand.genes[0] == round(sigma / GRID)  # sigma + 0.1 (i - c) at i = c
            assert all(b > a for a, b in zip(cand.genes, cand.genes[1:], strict=False))
    assert len({cand.key for cand in seeds}) == len(seeds)


def test_known_landscape_longrope2_space():
    """Minimiser: c* = 13 with upper factors 9 + 0.2 (i - c*), a step of 0.6 from pair 22, capped
    at 2s; the lower group f_c*^(i/c*). Budget: population 32, 40 generations = 704 evaluations.
    Tolerance: the exact critical index and every factor within 0.5 (the range is 8 wide)."""
    c_star = 13
    upper = [min(16.0, 9.0 + 0.2 * (i - c_star) + (0.6 if i >= 22 else 0.0))
             for i in range(c_star, SPEC.n_pairs)]
    target = longrope2_factors(SPEC, c_star, upper)
    settings = quiet(population=32, iterations=40)
    result = search_longrope2(SPEC, TARGET, distance_to(target), settings)
    assert settings.evaluations() == result.search.evaluations == 704
    assert result.critical_index == c_star
    assert max(abs(a - b) for a, b in zip(result.long_factor, target, strict=True)) <= 0.5
    first, last = result.search.fitness_history[0], result.search.fitness_history[-1]
    assert last < first / 4  # the generations did the work, not the seeds


def test_known_landscape_longrope_v1_space():
    """Minimiser: f_i = 1 + 9 (i / 31)^2 on [1, 1.25 s = 10], every pair searched. Budget:
    population 32, 40 generations = 704 evaluations. Tolerance: every factor within 0.6."""
    n = SPEC.n_pairs
    target = [1.0 + 9.0 * (i / (n - 1)) ** 2 for i in range(n)]
    settings = quiet(population=32, iterations=40, fitness="ppl")
    result = search_longrope(SPEC, TARGET, distance_to(target), settings)
    assert result.search.evaluations == 704
    assert max(abs(a - b) for a, b in zip(result.long_factor, target, strict=True)) <= 0.6
    first, last = result.search.fitness_history[0], result.search.fitness_history[-1]
    assert last < first / 4


def test_all_dimensions_variant_searches_the_lower_pairs():
    settings = quiet(population=4, iterations=1, space="all")
    result = search_longrope2(SPEC, TARGET, lambda s: sum(s.long_factor), settings)
    assert min(result.long_factor) < 8  # pairs below s exist only when the lower group is searched


def test_yarn_lower_group_under_a_searched_upper_group():
    from ropebench.methods import get_extender

    yarn = get_extender("yarn").rescale(SPEC, TARGET).long_factor
    settings = quiet(population=4, iterations=1, lower="yarn")
    result = search_longrope2(SPEC, TARGET, lambda s: sum(s.long_factor), settings)
    c = result.critical_index
    assert result.long_factor[:c] == pytest.approx(yarn[:c])
    assert min(result.long_factor[c:]) >= 8 - 1e-9


# -- the fitness ---------------------------------------------------------------------------------

class CharTokenizer:
    """One token per character (so the space before the number is a token of its own)."""

    bos_token_id = None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(ch) for ch in text]}

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


def test_scored_span_is_the_digits_only_with_a_bare_space_token():
    tok = CharTokenizer()
    ids, start = answer_tokens(tok, "The number is", " 4500689")
    assert tok.decode(ids[start:]) == "4500689"


def test_scored_span_on_the_test_tokenizer(tok):
    scorer = NeedlePPL(tok, 600, 4, seed=3, needle_position="depths")
    for doc in scorer.documents:
        scored = [tok.decode([i]) for i in doc.input_ids[doc.answer_start :]]
        assert "".join(scored).strip() == doc.value
        assert all(piece.strip() for piece in scored)  # no token of white space alone
        assert any(ch.isdigit() for ch in scored[0])


class FixedNLL:
    """A backend whose answer NLLs are given per document (in the order they are asked for)."""

    def __init__(self, spans):
        self.spans = list(spans)

    def nll(self, input_ids, first_target):
        total, count = self.spans.pop(0)
        return SimpleNamespace(total=total, count=count, mean=total / count)


def test_fitness_is_exp_of_the_mean_document_nll_by_hand(tok):
    docs = NeedlePPL(tok, 600, 3, seed=0)
    # Mean answer NLLs 0.5, 1.0 and 3.0 -> exp(1.5) = 4.4817; a mean of perplexities would give
    # (1.6487 + 2.7183 + 20.0855) / 3 = 8.1508.
    backend = FixedNLL([(3.5, 7), (7.0, 7), (18.0, 6)])
    assert docs.score(backend) == pytest.approx(math.exp(1.5), rel=1e-12)
    assert fitness_of([(0, 3.5, 7), (0, 7.0, 7), (0, 18.0, 6)]) == pytest.approx(4.481689, rel=1e-6)


def test_disjoint_document_sets(tok):
    first = NeedlePPL(tok, 600, 3, seed=0)
    again = NeedlePPL(tok, 600, 3, seed=0)
    second = NeedlePPL(tok, 600, 3, seed=0, first=3)
    assert [d.input_ids for d in first.documents] == [d.input_ids for d in again.documents]
    assert not {d.value for d in first.documents} & {d.value for d in second.documents}


def test_needle_position_is_in_the_checkpoint_fingerprint():
    from ropebench.methods.evolution.state import fingerprint_of

    start = fingerprint_of("longrope2", SPEC, TARGET, quiet(), None)
    depths = fingerprint_of("longrope2", SPEC, TARGET, quiet(needle_position="depths"), None)
    assert start != depths


def test_unknown_needle_position_is_one_line_exit_2(capsys, monkeypatch):
    import ropebench.model.load as load

    monkeypatch.setattr(load, "load_model", lambda *a, **k: pytest.fail("weights loaded"))
    code = main(["search", "reference", "--method", "longrope2", "--target-length", "4096",
                 "--set", "search.needle_position=middle", "--out", "/nonexistent/f.json"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "needle_position" in err


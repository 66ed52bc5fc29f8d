"""Evolutionary search invariants on a micro model (a custom fitness keeps the tests fast)."""

from __future__ import annotations

import dataclasses
import json
import math
import random

import pytest
import torch
from helpers import tiny_llama

from ropebench.backends.hf import HFBackend
from ropebench.errors import RopebenchError
from ropebench.methods.evolution import ga
from ropebench.methods.evolution.ga import search_output
from ropebench.methods.evolution.settings import EvolutionSettings as SearchSettings
from ropebench.methods.evolution.space import GRID, Candidate, SearchSpace, crossover, mutate
from ropebench.model.patch import spec_of
from ropebench.search.fitness import FITNESS, make_scorer

WINDOW, TARGET = 64, 256  # s = 4
TINY = dict(population=8, iterations=3, parents=4, mutations=2, crossovers=2, documents=1,
            baselines=())


pytestmark = pytest.mark.usefixtures("one_thread")


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def model():
    return tiny_llama(window=WINDOW, hidden_size=64, heads=2, layers=1)  # head_dim 32: 16 pairs


@pytest.fixture()
def nll_fitness():
    """Registers `test_nll`: mean NLL of fixed random tokens at the target length, recording the
    factor vector and attention factor of every candidate it scores. `calls["fail_at"]` raises after that many evaluations."""
    calls: dict = {"factors": [], "attention": [], "fail_at": None}
    tokens = torch.randint(3, 384, (1, TARGET), generator=torch.Generator().manual_seed(0))

    def factory(backend, length, settings):
        def score(backend):
            model = backend.model
            if calls["fail_at"] is not None and len(calls["factors"]) >= calls["fail_at"]:
                raise Interrupted
            calls["factors"].append(tuple(model.config.rope_parameters["long_factor"]))
            calls["attention"].append(model.config.rope_parameters["attention_factor"])
            return float(model(tokens, labels=tokens).loss)

        return score

    FITNESS.register("test_nll")(factory)
    yield calls
    FITNESS._builtins.pop("test_nll")


def settings(**kw) -> SearchSettings:
    return SearchSettings(**{**TINY, "fitness": "test_nll", "progress": False, **kw})


def search_longrope2(model, spec, target, settings, *, checkpoint=None):
    """The search as the harness runs it: a scorer over an HF backend holding `model`."""
    scorer = make_scorer(HFBackend(model, None), target, settings)
    return ga.search_longrope2(spec, target, scorer, settings, checkpoint=checkpoint)


def search_longrope(model, spec, target, settings, *, checkpoint=None):
    scorer = make_scorer(HFBackend(model, None), target, settings)
    return ga.search_longrope(spec, target, scorer, settings, checkpoint=checkpoint)


def test_longrope2_search_invariants(model, nll_fitness):
    spec = spec_of(model)
    result = search_longrope2(model, spec, TARGET, settings())
    s = TARGET / WINDOW
    c = result.critical_index
    f = result.long_factor
    from ropebench.rope.math import critical_index, critical_index_10

    assert critical_index_10(spec) <= c <= critical_index(spec)  # paper mode scans this range
    upper = f[c:]
    assert all(s - 1e-9 <= x <= 2 * s + 1e-9 for x in upper)
    assert all(abs(x / GRID - round(x / GRID)) < 1e-6 for x in upper)  # on the 0.01 grid
    assert all(a <= b for a, b in zip(upper, upper[1:], strict=False))
    for i in range(c):  # NTK-anchored lower group
        assert f[i] == pytest.approx(upper[0] ** (i / c), rel=1e-6)
    assert result.short_factor == (1.0,) * spec.n_pairs
    # Never the same vector twice: every scored factor list is distinct.
    assert len(nll_fitness["factors"]) == len(set(nll_fitness["factors"]))
    extra = result.to_dict()["extra"]  # the record as saved
    assert extra["evaluations"] == len(nll_fitness["factors"])
    assert extra["evaluations"] <= settings().evaluations()
    history = extra["fitness_history"]
    assert len(history) == TINY["iterations"] + 1
    assert all(
        b <= a for a, b in zip(history, history[1:], strict=False)
    )  # elitism: the best never gets worse
    assert extra["best_fitness"] == history[-1]


def test_search_result_is_the_best(model, nll_fitness):
    from ropebench.model.patch import apply_scaling

    spec = spec_of(model)
    result = search_longrope2(model, spec, TARGET, settings(iterations=1))
    tokens = torch.randint(3, 384, (1, TARGET), generator=torch.Generator().manual_seed(0))
    apply_scaling(model, result)
    with torch.no_grad():
        best = float(model(tokens, labels=tokens).loss)
    assert best == pytest.approx(result.search.best_fitness, rel=1e-5)
    assert best == pytest.approx(min(result.search.fitness_history), rel=1e-6)


def test_resume_matches_an_uninterrupted_run(model, nll_fitness, tmp_path):
    spec = spec_of(model)
    full = search_longrope2(model, spec, TARGET, settings(seed=3))
    n_full = len(nll_fitness["factors"])

    nll_fitness["factors"].clear()
    nll_fitness["fail_at"] = 11  # dies in the middle of generation 1
    ckpt = tmp_path / "state.json"
    with pytest.raises(Interrupted):
        search_longrope2(model, spec, TARGET, settings(seed=3), checkpoint=ckpt)
    assert json.loads(ckpt.read_text())["state"]["cache"]  # evaluations so far are kept
    done_before = len(nll_fitness["factors"])
    nll_fitness["fail_at"] = None
    resumed = search_longrope2(model, spec, TARGET, settings(seed=3), checkpoint=ckpt)
    assert resumed.long_factor == full.long_factor
    assert resumed.critical_index == full.critical_index
    assert resumed.search.fitness_history == full.search.fitness_history
    # Nothing evaluated twice across the interruption.
    assert len(nll_fitness["factors"]) == n_full
    assert done_before == 11


def test_checkpoint_of_another_search_is_refused(model, nll_fitness, tmp_path):
    spec = spec_of(model)
    ckpt = tmp_path / "state.json"
    search_longrope2(model, spec, TARGET, settings(iterations=0), checkpoint=ckpt)
    with pytest.raises(RopebenchError, match="different search"):
        search_longrope2(model, spec, TARGET, settings(iterations=0, seed=9), checkpoint=ckpt)


def test_released_mode_fixes_the_critical_index(model, nll_fitness):
    from ropebench.rope.math import critical_index

    spec = spec_of(model)
    result = search_longrope2(model, spec, TARGET, settings(mode="released", iterations=1))
    assert result.critical_index == critical_index(spec) - 1
    fixed = search_longrope2(model, spec, TARGET, settings(critical_index=5, iterations=1))
    assert fixed.critical_index == 5


def test_yarn_temperature_option_reaches_the_candidates(model, nll_fitness):
    """The released code's YaRN-style temperature: every candidate and the result carry it."""
    from ropebench.rope.math import longrope_mscale, yarn_mscale

    result = search_longrope2(model, spec_of(model), TARGET, settings(mscale="yarn", iterations=1))
    temperatures = nll_fitness["attention"]
    s = TARGET / WINDOW
    assert result.attention_factor == pytest.approx(yarn_mscale(s))
    assert temperatures and all(t == pytest.approx(yarn_mscale(s)) for t in temperatures)
    assert yarn_mscale(s) != pytest.approx(longrope_mscale(s, WINDOW))
    with pytest.raises(RopebenchError, match="mscale"):
        SearchSettings(mscale="ntk")


def test_longrope_v1_searches_every_pair_in_bounds(model, nll_fitness):
    spec = spec_of(model)
    result = search_longrope(model, spec, TARGET, settings())
    s = TARGET / WINDOW
    f = result.long_factor
    assert result.method == "longrope" and result.critical_index is None
    assert all(1 - 1e-9 <= x <= 1.25 * s + 1e-9 for x in f)
    assert all(a <= b for a, b in zip(f, f[1:], strict=False))
    assert len(nll_fitness["factors"]) == len(set(nll_fitness["factors"]))


def test_mutation_and_crossover_keep_candidates_valid():
    from ropebench.rope.spec import RopeSpec

    spec = RopeSpec(base=10000.0, head_dim=32, rotary_dim=32, window=64)
    space = SearchSpace(spec, low=400, high=800, ntk_lower_group=True)
    rng = random.Random(0)
    a = Candidate(3, tuple(range(400, 400 + 13 * 30, 30)))
    b = Candidate(5, (500,) * 11)
    assert space.valid(a) and space.valid(b)
    for _ in range(200):
        child = mutate(a, space, rng, 0.3)
        assert space.valid(child) and child.critical_index == 3
        cross = crossover(a, b, space, rng, 0.15)
        assert cross.critical_index == 3 and len(cross.genes) == len(a.genes)
    factors = space.factors(b)
    assert factors[0] == 1.0 and factors[5] == pytest.approx(5.0)
    assert factors[2] == pytest.approx(5.0 ** (2 / 5))
    assert Candidate.from_key(a.key) == a


def test_settings_are_checked():
    with pytest.raises(RopebenchError, match="mode"):
        SearchSettings(mode="fast")
    with pytest.raises(RopebenchError, match="parents"):
        SearchSettings(population=4, parents=8)
    with pytest.raises(RopebenchError, match="unknown fitness .nope."):
        make_scorer(HFBackend(None, None), 128, SearchSettings(fitness="nope"))
    assert math.isclose(dataclasses.asdict(SearchSettings())["mutation_prob"], 0.3)


def test_longrope_v1_with_n_hat_scores_through_the_mixed_module(model, nll_fitness):
    from ropebench.model.mixed import MixedRotaryEmbedding
    from ropebench.model.patch import apply_scaling

    spec = spec_of(model)
    result = search_longrope(model, spec, TARGET, settings(iterations=1, n_hat=4))
    try:
        assert isinstance(model.model.rotary_emb, MixedRotaryEmbedding)
        assert model.model.rotary_emb.n_hat == 4 and result.extra["n_hat"] == 4
    finally:
        apply_scaling(model, result)


def test_a_finished_search_can_be_extended(model, nll_fitness, tmp_path):
    spec = spec_of(model)
    ckpt = tmp_path / "state.json"
    straight = search_longrope2(model, spec, TARGET, settings(iterations=3))
    nll_fitness["factors"].clear()
    search_longrope2(model, spec, TARGET, settings(iterations=1), checkpoint=ckpt)
    extended = search_longrope2(model, spec, TARGET, settings(iterations=3), checkpoint=ckpt)
    assert extended.long_factor == straight.long_factor
    assert extended.search.fitness_history == straight.search.fitness_history
    assert len(nll_fitness["factors"]) == straight.search.evaluations


def test_baselines_are_scored_on_the_fitness_documents_and_survive_a_resume(model, tmp_path):
    """Each analytic method is scored once with the search's own scorer, outside the search."""
    from ropebench.methods import get_extender
    from ropebench.model.patch import apply_scaling

    tokens = torch.randint(3, 384, (1, TARGET), generator=torch.Generator().manual_seed(1))
    scored: list[str] = []

    def factory(backend, length, settings):
        def score(backend):
            model = backend.model
            scored.append(model.config.rope_parameters["rope_type"])
            return float(model(tokens, labels=tokens).loss)

        return score

    FITNESS.register("test_loss")(factory)
    try:
        spec = spec_of(model)
        ckpt = tmp_path / "state.json"
        first = search_longrope2(model, spec, TARGET, settings(
            fitness="test_loss", iterations=0, baselines=("yarn",)), checkpoint=ckpt)
        # More generations and another baseline: the checkpoint still fits, only pi is new.
        scored.clear()
        second = search_longrope2(model, spec, TARGET, settings(
            fitness="test_loss", iterations=1, baselines=("pi", "yarn")), checkpoint=ckpt)
    finally:
        FITNESS._builtins.pop("test_loss")
    assert list(first.search.baseline_fitness) == ["yarn"]
    assert list(second.search.baseline_fitness) == ["pi", "yarn"]
    assert scored.count("linear") == 1 and "yarn" not in scored  # pi scored once, yarn reused
    assert second.search.baseline_fitness["yarn"] == first.search.baseline_fitness["yarn"]
    assert second.search.evaluations == first.search.evaluations + 4  # baselines not counted
    for name, value in second.search.baseline_fitness.items():
        apply_scaling(model, get_extender(name).rescale(spec, TARGET))
        with torch.no_grad():
            assert float(model(tokens, labels=tokens).loss) == pytest.approx(value, rel=1e-5)
    assert search_output(second)["baseline_fitness"] == second.search.baseline_fitness


def test_unknown_baseline_is_refused_up_front():
    with pytest.raises(RopebenchError, match="search baseline: unknown method 'yarnn'"):
        SearchSettings(baselines=("pi", "yarnn"))


def test_checkpoint_of_another_model_with_the_same_config_is_refused(model, nll_fitness, tmp_path):
    spec = spec_of(model)
    ckpt = tmp_path / "state.json"
    search_longrope2(model, spec, TARGET, settings(iterations=0), checkpoint=ckpt)
    twin = tiny_llama(window=WINDOW, hidden_size=64, heads=2, layers=1, seed=4)  # other weights
    assert spec_of(twin) == spec
    with pytest.raises(RopebenchError, match="different search"):
        search_longrope2(twin, spec, TARGET, settings(iterations=0), checkpoint=ckpt)


class _Batched:
    """A scorer as several processes present it: `width` candidates per `score_many` call."""

    def __init__(self, scorer, width, writes=True):
        self.scorer, self.width, self.writes_checkpoints = scorer, width, writes
        self.identity, self.batches = scorer.identity, []

    def __call__(self, scaling):
        return self.scorer(scaling)

    def score_many(self, scalings):
        self.batches.append(len(scalings))
        return [self.scorer(s) for s in scalings]


def test_batch_scoring_finds_what_one_by_one_finds_and_resumes_either_way(model, nll_fitness,
                                                                         tmp_path):
    spec = spec_of(model)
    full = search_longrope2(model, spec, TARGET, settings(seed=3))
    scorer = make_scorer(HFBackend(model, None), TARGET, settings(seed=3))
    batched = _Batched(scorer, width=3)
    result = ga.search_longrope2(spec, TARGET, batched, settings(seed=3))
    assert max(batched.batches) == 3 and sum(batched.batches) == full.search.evaluations
    for key in ("fitness_history", "best_fitness", "baseline_fitness", "evaluations"):
        assert getattr(result.search, key) == getattr(full.search, key)
    assert (result.long_factor, result.critical_index) == (full.long_factor, full.critical_index)

    # A process that does not write checkpoints leaves none; an interrupted batched search
    # resumes one by one (another number of processes) to the same result.
    ckpt = tmp_path / "state.json"
    ga.search_longrope2(spec, TARGET, _Batched(scorer, 2, writes=False), settings(seed=3),
                        checkpoint=ckpt)
    assert not ckpt.exists()
    nll_fitness["factors"].clear()
    nll_fitness["fail_at"] = 9
    with pytest.raises(Interrupted):
        ga.search_longrope2(spec, TARGET, _Batched(scorer, 2), settings(seed=3), checkpoint=ckpt)
    assert len(json.loads(ckpt.read_text())["state"]["cache"]) == 8
    nll_fitness["fail_at"] = None
    resumed = search_longrope2(model, spec, TARGET, settings(seed=3), checkpoint=ckpt)
    assert resumed.search.fitness_history == full.search.fitness_history
    assert resumed.long_factor == full.long_factor

"""Each seam takes a new piece without touching the package: a task, a method with its own
search settings, a backend and a fitness function, all defined here."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from helpers import tiny_llama, tiny_tokenizer

from ropebench.backends.base import Backend, SpanNLL
from ropebench.backends.hf import HFBackend
from ropebench.errors import RopebenchError
from ropebench.methods.base import EXTENDERS, Extender, SearchSettings
from ropebench.rope.math import pi_factors, scale_of
from ropebench.rope.scaling import RopeScaling, hf_rope_parameters
from ropebench.run.evaluate import run_evaluation
from ropebench.search.fitness import FITNESS, make_scorer
from ropebench.settings import parse_settings, setting
from ropebench.tasks.base import MeasuredTask
from ropebench.tasks.registry import TASKS, get_task

pytestmark = pytest.mark.usefixtures("one_thread")


class FirstTokenNLL(MeasuredTask):
    """A toy benchmark: the NLL of each document's second token."""

    name = "toy_first_token"
    unit = "perplexity"

    def measure(self, backend, length, *, samples, seed, options):
        ids = list(range(3, 3 + length))
        span = backend.nll(ids, 1, 2)
        return [self.value_row(length, span.mean, 0.0, documents=samples)]


class CountingBackend(HFBackend):
    """A backend that counts the NLL requests it serves (any engine would do)."""

    name = "counting"
    calls = 0

    def nll(self, input_ids, first_target, last_target=None) -> SpanNLL:
        CountingBackend.calls += 1
        return super().nll(input_ids, first_target, last_target)


@dataclass
class StepSettings(SearchSettings):
    steps: int = setting(3, min=1)


class SteppedPI(Extender):
    """A method with its own search: try PI factors of s, s+1, ... and keep the best."""

    name = "toy-stepped-pi"
    search_settings_class = StepSettings

    def rescale(self, spec, target_length, factor=None) -> RopeScaling:
        factor = factor or scale_of(spec, target_length)
        return RopeScaling(self.name, target_length, spec.window, pi_factors(spec, factor), 1.0,
                           hf_rope_parameters(spec, "linear", factor=factor))

    def search(self, spec, target_length, scorer, settings=None, *, checkpoint=None):
        settings = settings or StepSettings()
        s = scale_of(spec, target_length)
        tried = [self.rescale(spec, target_length, s + k) for k in range(settings.steps)]
        return min(tried, key=scorer)


@pytest.fixture()
def registered():
    TASKS.add("toy_first_token", FirstTokenNLL())
    EXTENDERS.add("toy-stepped-pi", SteppedPI)
    FITNESS.add("toy_nll", lambda backend, length, settings: lambda b: b.nll(
        list(range(3, 3 + length)), 1).mean)
    yield
    TASKS._builtins.pop("toy_first_token")
    EXTENDERS._builtins.pop("toy-stepped-pi")
    FITNESS._builtins.pop("toy_nll")


def test_a_new_task_and_backend_run_through_the_evaluation_loop(registered, tmp_path):
    model, tok = tiny_llama(window=64), tiny_tokenizer()
    backend = CountingBackend(model, tok)
    assert isinstance(backend, Backend) and get_task("toy_first_token").unit == "perplexity"
    rows = run_evaluation(backend, method="none", tasks=["toy_first_token"], lengths=[16, 32],
                          samples=1, seed=0, out_dir=tmp_path, progress=False)
    assert list(rows["length"]) == [16, 32] and CountingBackend.calls == 2
    direct = HFBackend(model, tok).nll(list(range(3, 19)), 1, 2).mean
    assert rows["score"].iloc[0] == pytest.approx(direct)


def test_a_method_with_its_own_search_settings_and_fitness(registered):
    from ropebench.model.patch import spec_of
    from ropebench.run.plan import search_settings_class

    model, tok = tiny_llama(window=64), tiny_tokenizer()
    spec = spec_of(model)
    assert search_settings_class("toy-stepped-pi") is StepSettings
    settings = parse_settings(StepSettings, {"steps": "2", "fitness": "toy_nll"}, where="search")
    with pytest.raises(RopebenchError, match="did you mean steps"):
        parse_settings(StepSettings, {"step": 2}, where="search")
    scorer = make_scorer(HFBackend(model, tok), 256, settings)
    best = EXTENDERS.get("toy-stepped-pi")().search(spec, 256, scorer, settings)
    scores = [scorer(SteppedPI().rescale(spec, 256, f)) for f in (4.0, 5.0)]
    assert scorer(best) == min(scores)

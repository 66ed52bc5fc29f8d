"""The LongRoPE2 study's plan shape at toy size, end to end: every ablation of the study is a plan
entry (temperatures swapped, YaRN's lower group under a searched upper group, every pair searched,
mixed vs plain training, every trained method on one budget), and the stage records carry what the
report reads (`search_evaluations`, `tokens_short`, `tokens_long`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ropebench.run.plan import load_plan, plan_from_dict
from ropebench.run.runner import ComparisonRunner
from ropebench.run.stages import ArtifactStore, plan_stages

pytestmark = pytest.mark.slow

STUDY = Path(__file__).resolve().parents[1] / "ropebench/run/plans/longrope2-study.yaml"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A 128-token micro Llama and training text with documents on both sides of the window."""
    import pydoc_data.topics

    from helpers import tiny_llama, tiny_tokenizer

    root = tmp_path_factory.mktemp("study")
    tiny_llama(window=128, layers=1, hidden_size=64, heads=2).save_pretrained(root / "model")
    tiny_tokenizer().save_pretrained(root / "model")
    (root / "data").mkdir()
    texts = list(pydoc_data.topics.topics.values())[:40]
    for i, text in enumerate(texts):  # short ones (under the window) and long ones
        (root / "data" / f"{i}.txt").write_text(text[:300] if i % 2 else text[:3000])
    return root


def toy_plan(workspace: Path) -> dict:
    """The study plan itself, with the model, budgets and samples shrunk."""
    raw = yaml.safe_load(STUDY.read_text())
    raw["model"] = str(workspace / "model")
    raw["target_length"] = 512
    raw["search"].update(population=2, initial=3, iterations=1, parents=2, mutations=1,
                         crossovers=1, documents=1, spread_sets=2)
    raw["train"].update(steps=2, warmup_steps=0, log_every=1, data=str(workspace / "data"))
    raw["evaluate"].update(samples=1, lengths=[512])
    raw["evaluate"]["options"]["max_new_tokens"] = 4
    return raw


def test_the_study_plan_holds_every_ablation():
    plan = load_plan(STUDY)
    labels = {m.label: m for m in plan.methods}
    assert labels["yarn-longrope-temperature"].params == {"mscale": "longrope"}
    assert labels["longrope2-yarn-temperature"].params == {"mscale": "yarn"}
    assert labels["longrope2-yarn-lower"].search["lower"] == "yarn"
    assert labels["longrope2-all-dims"].search["space"] == "all"
    assert labels["longrope2-plain"].params == {"mixed": False}
    trained = [m for m in plan.methods if m.train is not None]
    assert {m.method for m in trained} == {"yarn", "longrope2", "pi", "ntk"}
    assert len({json.dumps(m.train, sort_keys=True) for m in trained}) == 1  # one budget
    assert plan.methods[2].search["documents"] == 10
    assert plan.methods[2].search["needle_position"] == "depths"
    # Searched once: the trained LongRoPE2 variants reuse the untrained entry's search.
    graph = {ms.method.label: ms for ms in plan_stages(plan, {"model": "x"})}
    assert (graph["longrope2"].scaling.relpath == graph["longrope2-mixed"].scaling.relpath
            == graph["longrope2-plain"].scaling.relpath)
    assert graph["longrope2-mixed"].train.key != graph["longrope2-plain"].train.key


def test_the_study_runs_end_to_end_at_toy_size(workspace, one_thread):
    plan = plan_from_dict(toy_plan(workspace))
    run_dir = workspace / "run"
    ComparisonRunner(plan, run_dir, progress=False).run()
    store = ArtifactStore(run_dir)
    graph = {ms.method.label: ms for ms in plan_stages(plan, _model_id(workspace))}
    assert all(store.is_done(stage) for ms in graph.values() for stage in ms.all())
    searched = store.record(graph["longrope2"].scaling)
    assert searched["search_evaluations"] == 3 + 1 * 2
    assert store.record(graph["yarn"].scaling)["search_evaluations"] == 0
    scaling = json.loads((store.path(graph["longrope2"].scaling) / "scaling.json").read_text())
    spread = scaling["extra"]["baseline_spread"]
    assert set(spread) == {"pi", "ntk", "yarn"} and all(len(v) == 2 for v in spread.values())
    mixed = store.record(graph["longrope2-mixed"].train)
    plain = store.record(graph["longrope2-plain"].train)
    assert mixed["tokens_short"] > 0 and mixed["tokens_long"] > 0
    assert plain["tokens_short"] == 0 and plain["tokens_long"] == plain["tokens"] > 0
    for label in ("yarn-trained", "pi-trained", "ntk-trained"):
        record = store.record(graph[label].train)
        assert record["tokens_short"] == 0 and record["tokens_long"] == plain["tokens"]
    temperatures = {
        label: json.loads((store.path(graph[label].scaling) / "scaling.json").read_text())
        ["attention_factor"]
        for label in ("yarn", "yarn-longrope-temperature", "longrope2",
                      "longrope2-yarn-temperature")
    }
    assert temperatures["yarn"] == pytest.approx(temperatures["longrope2-yarn-temperature"])
    assert temperatures["longrope2"] == pytest.approx(temperatures["yarn-longrope-temperature"])
    assert temperatures["yarn"] != pytest.approx(temperatures["longrope2"])
    all_dims = json.loads((store.path(graph["longrope2-all-dims"].scaling) / "scaling.json")
                          .read_text())
    assert min(all_dims["long_factor"]) < 4  # pairs below s: the lower group is searched too


def _model_id(workspace: Path) -> dict:
    from ropebench.run.stages import model_fingerprint

    return model_fingerprint(str(workspace / "model"))

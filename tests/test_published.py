"""Published numbers beside a run: the shipped rows, the comparison, the report, `reproduce`."""

from __future__ import annotations

import json

import pytest
import yaml
from test_report import make_run

from ropebench.cli.main import main
from ropebench.errors import RopebenchError
from ropebench.methods import available_extenders
from ropebench.reports import write_report
from ropebench.reports.html import render_html
from ropebench.reports.published import views
from ropebench.reports.results import load_run
from ropebench.run.plan import plan_from_dict
from ropebench.run.published import (
    Comparison,
    compare,
    get_published,
    model_matches,
    published_rows,
    reproduction_plan,
)
from ropebench.tasks import GROUPS

LLAMA = "llama-3.1-8b-instruct"
UNRELEASED = "longrope2-table2-phi3-mini-longrope2"  # the paper's Phi3-mini base is not on the hub
ROWS = sorted(published_rows())


@pytest.mark.parametrize("name", ROWS)
def test_every_row_cites_its_table_and_reads_as_published(name):
    row = get_published(name)
    assert row.source and row.url.startswith("https://") and row.table and row.version
    assert row.benchmark in GROUPS and row.method in available_extenders()
    assert list(row.scores) == sorted(row.scores) == [4096 * 2**i for i in range(6)]
    assert all(0 <= s <= 100 for s in row.scores.values())
    assert row.samples is None or row.samples > 0
    # what the source leaves open (no sample count, no released checkpoint) is said in the note
    assert row.note or (row.samples is not None and row.model is not None)


def test_rows_as_read_in_their_sources():
    rows = published_rows()
    # NVIDIA/RULER README.md at c3f5e3b, main table, "Llama3.1 (8B)"
    assert rows[LLAMA].scores[4096] == 95.5 and rows[LLAMA].scores[131072] == 77.0
    # Phi-3.5-mini-instruct's card, RULER table, "Phi-3.5-mini-instruct": 94.3 ... 63.6
    assert rows["phi-3.5-mini-instruct"].scores[4096] == 94.3
    assert rows["phi-3.5-mini-instruct"].scores[131072] == 63.6
    # LongRoPE2 (arXiv 2502.20082v1) Table 2, "Base Model: LLaMA3-8B", "LongRoPE2": 94.61 ... 82.03
    table2 = rows["longrope2-table2-llama3-8b-longrope2"]
    assert table2.scores[4096] == 94.61 and table2.scores[131072] == 82.03 and table2.trained
    assert rows["longrope2-table2-phi3-mini-yarn"].scores[131072] == 39.37
    assert rows[UNRELEASED].model is None and rows[UNRELEASED].samples is None
    # Qwen2.5 report (arXiv 2412.15115) Table 16, "Qwen2.5-7B-Instruct" and its "w/o DCA + YARN"
    with_dca, without = rows["qwen2.5-7b-instruct-yarn-dca"], rows["qwen2.5-7b-instruct"]
    assert with_dca.scores[131072] == 55.1 and without.scores[131072] == 31.4
    assert with_dca.params == {"frequency": "yarn"} and not with_dca.trained
    # the caption: YaRN+DCA does not change the model within 32K tokens
    assert all(with_dca.scores[n] == without.scores[n] for n in (4096, 8192, 16384, 32768))
    assert rows[LLAMA].plan_samples == 500 and rows[UNRELEASED].plan_samples == 500


def test_inside_the_interval_both_ways():
    inside = Comparison(4096, published=95.5, measured=94.0, low=92.1, high=95.9, n=6500)
    outside = Comparison(8192, published=93.8, measured=90.0, low=88.0, high=92.0, n=6500)
    assert inside.inside and inside.difference == pytest.approx(-1.5)
    assert inside.statement() == ("published 95.5 lies inside the measured 95% interval "
                                  "[92.1, 95.9] (n=6500)")
    assert not outside.inside and outside.difference == pytest.approx(-3.8)
    assert "lies outside the measured 95% interval [88.0, 92.0]" in outside.statement()
    # the interval's ends count as inside
    assert Comparison(1, 92.0, 90.0, 88.0, 92.0, 10).inside


@pytest.mark.parametrize("name", ROWS)
def test_inside_and_outside_for_every_row(name):
    """Each row's published number, compared with an interval around it and one beside it."""
    row = get_published(name)
    length = min(row.scores)
    published = row.scores[length]
    around = compare(row, {length: (published, published - 1.0, published + 1.0, 6500)})[0]
    beside = compare(row, {length: (published - 5.0, published - 7.0, published - 3.0, 6500)})[0]
    assert around.inside and f"published {published} lies inside" in around.statement()
    assert not beside.inside and f"published {published} lies outside" in beside.statement()
    assert beside.difference == pytest.approx(-5.0)


def test_compare_uses_the_lengths_both_have():
    row = get_published(LLAMA)
    found = compare(row, {4096: (95.0, 94.0, 96.0, 13), 512: (99.0, 98.0, 100.0, 13)})
    assert [c.length for c in found] == [4096] and found[0].inside


def test_model_match():
    assert model_matches("meta-llama/Meta-Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-8B-Instruct")
    assert model_matches("/models/Meta-Llama-3.1-8B-Instruct/", "meta-llama/Meta-Llama-3.1-8B-Instruct")
    assert not model_matches("reference", "meta-llama/Meta-Llama-3.1-8B-Instruct")
    assert not model_matches("reference", None)  # a row whose checkpoint was not released


def _run_measuring(tmp_path, score_4096: float):
    """The synthetic run, relabelled as the published model; its baseline has 4 samples per RULER
    task at 4096 scoring `score_4096` +- 0.05 (mean `score_4096`, an interval of a few points)."""
    run = make_run(tmp_path / "run")
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["model"] = "meta-llama/Meta-Llama-3.1-8B-Instruct"
    (run / "manifest.json").write_text(json.dumps(manifest))
    rows_path = next(run.glob("stages/eval/none-k/rows.jsonl"))
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    kept = [r for r in rows if not (r["task"] in GROUPS["ruler"] and r["length"] == 4096)]
    for task in GROUPS["ruler"]:
        for i, delta in enumerate((-0.05, 0.05, -0.05, 0.05)):
            kept.append({**rows[0], "task": task, "length": 4096, "index": i,
                         "score": score_4096 + delta, "metadata": {}})
    rows_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    (run / "plan.json").write_text(json.dumps({"name": "x", "published": [LLAMA]}))
    return run


@pytest.mark.parametrize(("score", "inside"), [(0.955, True), (0.80, False)])
def test_report_says_whether_the_published_number_is_inside(tmp_path, score, inside):
    results = load_run(_run_measuring(tmp_path, score))
    view = views(results)[0]
    assert view["method"] == "none" and [c["length"] for c in view["comparisons"]] == [4096]
    comparison = view["comparisons"][0]
    assert comparison["inside"] is inside
    assert comparison["difference"] == pytest.approx(100 * score - 95.5, abs=0.05)
    html = render_html(results)
    assert "Published numbers" in html and "NVIDIA/RULER README.md" in html
    assert ("lies inside the measured" in html) is inside
    assert ("lies outside the measured" in html) is not inside
    assert "published: llama-3.1-8b-instruct" not in html  # the figure is an image, not text


def test_report_option_names_a_row_and_a_run_of_another_model_is_not_compared(tmp_path):
    run = make_run(tmp_path / "run")
    out = write_report(run, published=("phi-3-mini-128k-instruct",))
    html = out.read_text()
    assert "phi-3-mini-128k-instruct" in html and "not compared: the run measured tiny" in html


def test_report_of_a_row_without_a_released_model(tmp_path):
    run = make_run(tmp_path / "run")
    html = write_report(run, published=(UNRELEASED,)).read_text()
    assert "Model not released" in html and "not compared: the checkpoint this row measured was not released" in html
    assert "94.61" not in html and "58.81" in html  # its own numbers, as published


def test_unknown_published_row_is_one_line_and_exit_2(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    assert main(["report", str(run), "--published", "llama-9-zillion"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown published row 'llama-9-zillion'" in err
    assert not (run / "report.html").exists()
    assert main(["reproduce", "llama-9-zillion"]) == 2
    with pytest.raises(RopebenchError, match="unknown published row"):
        plan_from_dict({"model": "reference", "target_length": 1024, "methods": ["none"],
                        "evaluate": {"tasks": ["passkey"], "lengths": [512]},
                        "published": ["nope"]})


def test_reproduce_writes_the_plan_of_a_row(tmp_path, capsys):
    out = tmp_path / "plan.yaml"
    assert main(["reproduce", LLAMA, "--out", str(out)]) == 0
    plan = yaml.safe_load(out.read_text())
    assert plan == reproduction_plan(get_published(LLAMA))
    assert plan["model"] == "meta-llama/Meta-Llama-3.1-8B-Instruct"
    assert plan["evaluate"]["lengths"] == [4096, 8192, 16384, 32768, 65536, 131072]
    assert plan["evaluate"]["samples"] == 500 and plan["evaluate"]["seed"] == 42
    assert plan["published"] == [LLAMA] and plan["target_length"] == 131072
    assert "Source: NVIDIA/RULER README.md" in out.read_text()
    # Everything but the model (not available offline) validates as a plan.
    offline = {**plan, "model": "reference", "target_length": 4096,
               "evaluate": {**plan["evaluate"], "lengths": [4096]}}
    assert plan_from_dict(offline).published == (LLAMA,)


def _offline(plan: dict) -> dict:
    """The plan on the shipped reference model (no hub access in tests), at one length."""
    return {**plan, "model": "reference", "target_length": 4096,
            "evaluate": {**plan["evaluate"], "lengths": [4096]}}


@pytest.mark.parametrize("name", ROWS)
def test_reproduce_writes_a_plan_for_every_row(tmp_path, capsys, name):
    row = get_published(name)
    out = tmp_path / "plan.yaml"
    model = [] if row.model else ["--model", "/models/base"]
    assert main(["reproduce", name, "--out", str(out), *model]) == 0
    plan = yaml.safe_load(out.read_text())
    assert plan == reproduction_plan(row, None if row.model else "/models/base")
    method = {"method": row.method, "params": row.params} if row.params else row.method
    assert plan["model"] == (row.model or "/models/base") and plan["methods"] == [method]
    assert plan["evaluate"]["lengths"] == sorted(row.scores) and plan["target_length"] == 131072
    assert plan["evaluate"]["samples"] == (row.samples or 500)
    assert ("train" in plan) is row.trained
    text = out.read_text()
    assert f"Source: {row.source}, {row.table}, {row.url}" in text
    assert ("states no sample count" in text) is (row.samples is None)
    assert plan_from_dict(_offline(plan)).published == (name,)


def test_reproduce_of_an_unreleased_checkpoint_needs_model(tmp_path, capsys):
    out = tmp_path / "plan.yaml"
    assert main(["reproduce", UNRELEASED, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "was not released" in err and "--model PATH" in err
    assert not out.exists()

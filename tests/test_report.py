"""The report on a synthetic run directory: tables, figures, HTML (escaped, self-contained), CSV, Markdown."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from ropebench.errors import RopebenchError
from ropebench.reports.cells import cell_stats
from ropebench.reports.export import markdown_summary, write_csv
from ropebench.reports.groups import group_by_length, group_threshold
from ropebench.reports.headline import headline
from ropebench.reports.html import render_html
from ropebench.reports.results import load_run
from ropebench.reports.sections import sections
from ropebench.reports.sections.depth_grid import depth_grid
from ropebench.reports.sections.group import group_tasks_table
from ropebench.reports.summary import summary_scores, summary_table
from ropebench.tasks import GROUPS

LENGTHS = [512, 1024, 2048, 4096]
DEPTHS = [0.0, 50.0, 100.0]
EVIL = "<script>alert('x')</script> & <b>bold</b>"
SPEC = {"base": 10000.0, "head_dim": 32, "rotary_dim": 32, "window": 512,
        "partial_rotary_factor": 1.0, "model_type": "llama"}


def _quality(method: str, length: int) -> float:
    """Synthetic truth: every method is perfect inside the window, then decays at its own rate."""
    decay = {"none": 1.5, "pi": 0.25, "longrope2": 0.04}[method]
    return max(0.0, 1.0 - decay * math.log2(length / 512))


def _rows(method: str) -> list[dict]:
    rng = random.Random(method)
    rows = []

    def add(task, length, score, prediction="", index=0, **metadata):
        rows.append({"task": task, "length": length, "method": method, "score": score,
                     "prediction": prediction, "references": ["1234567"], "input_tokens": length,
                     "seconds": 0.1, "index": index, "metadata": metadata})

    for length in LENGTHS:
        q = _quality(method, length)
        for task in GROUPS["ruler"]:
            add(task, length, q, prediction=EVIL if task == "vt" else "1234567")
        for i, depth in enumerate(DEPTHS):
            add("niah", length, 1.0 if rng.random() < q else 0.0, "1234567", index=i, depth=depth)
        add("ppl", length, 5.0 + 30.0 * (1.0 - q))
        add("passkey", length, q, "4242")
    for task, acc in (("arc_offline", 0.6), ("piqa_offline", 0.7)):
        add("short", 0, acc * (0.9 if method == "pi" else 1.0), lm_eval_task=task)
    return rows


def make_run(root: Path, *, complete: bool = True) -> Path:
    """A run directory laid out like `ropebench compare` writes it, with made-up numbers."""
    methods = []
    for label in ("none", "pi", "longrope2"):
        stage = root / "stages"
        scaling_dir, train_dir, eval_dir = (stage / k / f"{label}-k" for k in ("scaling", "train", "eval"))
        for folder in (scaling_dir, train_dir, eval_dir):
            folder.mkdir(parents=True)
        factors = {"none": [1.0] * 16, "pi": [8.0] * 16,
                   "longrope2": [8.0 ** (i / 9) if i < 9 else 8.0 + 0.2 * (i - 9) for i in range(16)]}[label]
        scaling = {"method": label, "target_length": 4096, "original_length": 512, "long_factor": factors,
                   "attention_factor": 1.0, "rope_parameters": {}, "short_factor": None,
                   "critical_index": 9 if label == "longrope2" else None,
                   "provenance": "searched" if label == "longrope2" else "analytic",
                   "extra": {"fitness_history": [9.0, 7.5, 7.1], "evaluations": 24, "seconds": 12.5,
                             "baseline_fitness": {"pi": 41.0, "yarn": 7.3}}
                   if label == "longrope2" else {}}
        (scaling_dir / "scaling.json").write_text(json.dumps(scaling))
        (scaling_dir / "done").write_text("{}")
        entry = {"label": label, "method": label, "baseline": label == "none",
                 "scaling": {"path": f"stages/scaling/{label}-k"}, "train": None,
                 "evals": {"all": {"path": f"stages/eval/{label}-k"}}}
        if label != "none":
            losses = {"losses": [[s, 4.0 - s / 20] for s in range(0, 40, 5)], "tokens": 40960, "seconds": 30.0}
            (train_dir / "losses.json").write_text(json.dumps(losses))
            (train_dir / "done").write_text("{}")
            entry["train"] = {"path": f"stages/train/{label}-k"}
        rows = _rows(label)
        if not complete and label == "longrope2":
            rows = rows[: len(rows) // 2]
        else:
            (eval_dir / "done").write_text("{}")
        (eval_dir / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        methods.append(entry)
    manifest = {"name": "synthetic", "model": "tiny", "target_length": 4096, "spec": SPEC, "methods": methods}
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "plan.json").write_text(json.dumps({"name": "synthetic", "note": "<i>plan</i>"}))
    (root / "runlog.jsonl").write_text(json.dumps(
        {"event": "run_start", "environment": {"python": "3.x", "versions": {"torch": "test"}}}) + "\n")
    return root


@pytest.fixture
def run_dir(tmp_path):
    return make_run(tmp_path / "run")


def test_summary_numbers(run_dir):
    results = load_run(run_dir)
    summary = summary_table(results)
    assert list(summary.index) == ["none", "pi", "longrope2"]
    assert summary.loc["none", "RULER 512"] == pytest.approx(100.0)
    assert summary.loc["pi", "RULER 2048"] == pytest.approx(50.0)
    # none scores 100 at its window, above RULER's 85.6, so 85.6 is the bar: none and pi (75 at
    # 1024) pass only at 512; longrope2 scores 96, 92, 88 beyond the window and passes at 4096.
    assert summary.loc["none", "effective length"] == 512
    assert summary.loc["pi", "effective length"] == 512
    assert summary.loc["longrope2", "effective length"] == 4096
    assert summary.loc["pi", "short retained %"] == pytest.approx(90.0)
    assert summary.loc["none", "short retained %"] == pytest.approx(100.0)
    assert summary.loc["longrope2", "search evals"] == 24
    assert summary.loc["pi", "train tokens"] == 40960
    assert summary.loc["pi", "PPL 4096"] == pytest.approx(5.0 + 30.0 * 0.75)


def test_explicit_threshold_changes_effective_length(run_dir):
    summary = summary_table(load_run(run_dir), threshold=40.0)
    # pi scores 100, 75, 50, 25 at 512..4096: 2048 is the longest length above 40.
    assert summary.loc["pi", "effective length"] == 2048
    assert summary.loc["none", "effective length"] == 512


def test_weak_baseline_lowers_the_threshold(run_dir):
    results = load_run(run_dir)
    ruler = group_by_length(results.rows, results.labels, "ruler")
    ruler.loc["none", 512] = 50.0  # a small model: 0.9 x its own score at the window
    assert group_threshold(ruler, "none", 512) == pytest.approx(45.0)


def test_niah_grid_and_ruler_tables(run_dir):
    results = load_run(run_dir)
    grid = depth_grid(results.rows, "niah", "longrope2")
    assert list(grid.index) == DEPTHS and list(grid.columns) == LENGTHS
    assert grid.to_numpy().min() >= 0 and grid.to_numpy().max() <= 1
    ruler = next(s for s in sections(results.rows) if s.key == "ruler")
    per_task = group_tasks_table(cell_stats(results.rows), ruler, "pi")
    assert list(per_task.index) == list(GROUPS["ruler"])
    assert per_task.loc["vt", "1024"] == pytest.approx(75.0)


def test_html_is_escaped_and_self_contained(run_dir):
    page = render_html(load_run(run_dir))
    assert "<script" not in page  # the model output is shown, escaped
    assert "&lt;script&gt;alert(" in page
    assert "&lt;i&gt;plan&lt;/i&gt;" in page
    # ruler, ppl, passkey, niah, short context kept, factors, fitness, loss
    assert page.count('src="data:image/png;base64,') == 8
    for external in ('src="http', "href=\"http", "@import", "url(http"):
        assert external not in page
    assert "incomplete" not in page


def test_incomplete_run_is_flagged(tmp_path):
    page = render_html(load_run(make_run(tmp_path / "run", complete=False)))
    assert "This run is incomplete: longrope2" in page


def test_csv_and_markdown(run_dir, tmp_path):
    results = load_run(run_dir)
    written = {p.name for p in write_csv(results, tmp_path / "csv")}
    assert {"summary.csv", "ruler_by_length.csv", "ppl_by_length.csv", "niah_pi.csv",
            "ruler_tasks_longrope2.csv", "short.csv"} <= written
    md = markdown_summary(results)
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    assert "RULER 4096" in header and "short retained %" in header
    assert "| longrope2 | longrope2 |" in md


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(RopebenchError, match="no manifest.json"):
        load_run(tmp_path)


def test_fitness_figure_draws_the_baselines_scored_by_the_search(run_dir, monkeypatch):
    from ropebench.reports import figures

    results = load_run(run_dir)
    searched = [m for m in results.methods if m.fitness_history]
    assert [m.baseline_fitness for m in searched] == [{"pi": 41.0, "yarn": 7.3}]
    drawn = {}
    monkeypatch.setattr(figures, "to_data_uri", lambda fig: drawn.setdefault("fig", fig) and "uri")
    assert figures.fitness_figure(results) == "uri"
    ax = drawn["fig"].axes[0]
    dashed = sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() == "--")
    assert dashed == [7.3, 41.0]
    assert ax.get_yscale() == "log"  # 41 against 7: a linear axis would flatten the history
    figures._pyplot().close(drawn["fig"])


def test_summary_has_weighted_averages_and_task_coverage(run_dir):
    results = load_run(run_dir)
    summary = summary_table(results)
    ruler = group_by_length(results.rows, results.labels, "ruler")
    if ruler.empty:
        pytest.skip("the demo run has no RULER rows")
    assert {"wAvg(inc)", "wAvg(dec)", "RULER tasks"} <= set(summary.columns)
    covered = summary["RULER tasks"].dropna()
    assert all(c.endswith("/13") or c.endswith("/13 partial") for c in covered if c)
    assert any(c.endswith("partial") for c in covered) == (
        results.rows[results.rows["task"].isin(GROUPS["ruler"])]["task"].nunique() < 13)


def _rewrite(run_dir: Path, rows_by_label: dict[str, list[dict]]) -> None:
    """Replace each method's rows (methods not given keep none)."""
    for label in ("none", "pi", "longrope2"):
        rows = rows_by_label.get(label, [])
        path = run_dir / "stages" / "eval" / f"{label}-k" / "rows.jsonl"
        path.write_text("".join(json.dumps({**r, "method": label}) + "\n" for r in rows))


def _row(task, length, score, index=0, tokens=None, **metadata):
    return {"task": task, "length": length, "score": score, "prediction": "", "references": [],
            "input_tokens": tokens if tokens is not None else length - 7, "seconds": 0.1,
            "index": index, "metadata": metadata}


def _passes(task, length, passed, n):
    return [_row(task, length, 1.0 if i < passed else 0.0, index=i) for i in range(n)]


def _ppl_row(length, nlls, tokens):
    score = math.exp(sum(nlls) / sum(tokens))
    return _row("ppl", length, score, document_nll=nlls, document_tokens=tokens,
                document_ppl=[math.exp(a / b) for a, b in zip(nlls, tokens, strict=True)])


def test_intervals_counts_tokens_and_ties(run_dir):
    docs = [10, 12, 9, 11, 10, 13]
    _rewrite(run_dir, {
        "none": _passes("niah_single_1", 4096, 10, 20) + [_ppl_row(4096, [3.0 * d for d in docs], docs)],
        "pi": _passes("niah_single_1", 4096, 18, 20) + [_ppl_row(4096, [2.0 * d for d in docs], docs)],
        "longrope2": _passes("niah_single_1", 4096, 20, 20)
        + [_ppl_row(4096, [2.1 * d for d in docs], docs)],
    })
    results = load_run(run_dir)
    summary, scores = summary_scores(results)
    assert scores[0].column == "RULER 4096"  # the group's longest length ranks the methods
    assert summary.loc["pi", "RULER 4096"] == pytest.approx(90.0)
    assert summary.loc["pi", "RULER 4096 n"] == 20
    assert summary.loc["pi", "RULER 4096 low"] < 90.0 < summary.loc["pi", "RULER 4096 high"]
    assert summary["RULER 4096 best"].tolist() == [False, False, True]
    assert summary["RULER 4096 tied"].tolist() == [False, True, False]  # 18/20 overlaps 20/20
    # Perplexity: one row per length, bootstrapped over its six documents.
    assert summary.loc["pi", "PPL 4096"] == pytest.approx(math.exp(2.0))
    assert summary.loc["pi", "PPL 4096 n"] == 6
    assert summary.loc["none", "PPL 4096 low"] == pytest.approx(math.exp(3.0))  # every doc alike
    assert bool(summary.loc["pi", "PPL 4096 best"])

    text = headline(summary, scores)
    assert text.startswith("Ranked by the RULER mean at 4096 tokens (higher is better): longrope2")
    assert "ahead of none" in text and "pi's interval overlaps longrope2's" in text

    page = render_html(results)
    first = page.index('<p class="headline">')
    assert first < page.index("<p", page.index("<h1")) + 1  # the page's first paragraph
    assert "n=20" in page and "4089 tok" in page and "n=6" in page
    assert 'class="tied"' in page and 'class="best"' in page
    assert "Wilson&#39;s 95% interval at the tasks&#39; effective sample count" in page


def test_perplexity_without_documents_has_no_interval(run_dir):
    _rewrite(run_dir, {m: [_row("ppl", 1024, 5.0 + i)] for i, m in enumerate(("none", "pi", "longrope2"))})
    summary = summary_table(load_run(run_dir))
    assert math.isnan(summary.loc["pi", "PPL 1024 low"])
    assert summary["PPL 1024 tied"].tolist() == [False, True, True]  # nothing separates them


def test_a_task_plugin_gets_its_own_section_without_report_changes(run_dir):
    from ropebench.tasks.base import GenerativeTask
    from ropebench.tasks.registry import TASKS

    class Recall(GenerativeTask):
        name = "plugin_recall"
        title = "Plugin recall"
        abbrev = "recall"

    TASKS.add("plugin_recall", Recall())
    try:
        _rewrite(run_dir, {
            m: _passes("plugin_recall", 1024, k, 8) + _passes("plugin_recall", 2048, k // 2, 8)
            + _passes("mystery_task", 1024, k, 8)
            for m, k in (("none", 2), ("pi", 6), ("longrope2", 8))
        })
        results = load_run(run_dir)
        summary = summary_table(results)
        assert summary.loc["pi", "recall %"] == pytest.approx(100 * 9 / 16)
        assert "mystery_task %" in summary  # not registered: a by-length fraction task
        page = render_html(results)
        assert '<h2 id="plugin-recall">Plugin recall</h2>' in page
        assert '<h2 id="mystery-task">mystery_task</h2>' in page
        assert page.count('src="data:image/png;base64,') == 1 + 3  # its figure + run-wide ones
        assert "Ranked by Plugin recall" in page
    finally:
        TASKS._builtins.pop("plugin_recall")


def test_configuration_shows_every_prompt_option_samples_recorded(run_dir):
    """Columns are the options samples recorded under their own names (a task's `samples`
    options); other metadata, and what measured tasks record, stay out of the table."""
    cwe = {"fill": "reference", "count_bos": True, "words": "english", "positions": "reference",
           "example_turn": "separate", "units": 9000, "input_tokens": 130000}
    qa = {"fill": "reference", "gold": "reference", "count_bos": True, "documents": 20,
          "gold_documents": [3]}
    _rewrite(run_dir, {m: [_row("qa_1", 1024, 1.0, **qa), _row("cwe", 1024, 0.5, **cwe),
                           _row("cwe", 1024, 0.5, index=1, **{**cwe, "words": "wonderwords"}),
                           _ppl_row(1024, [2.0], [1000])] for m in ("none", "pi")})
    page = render_html(load_run(run_dir))
    config = page[page.index('id="config"'):]
    assert ("<tr><th>task</th><th>fill</th><th>count_bos</th><th>words</th><th>positions</th>"
            "<th>example_turn</th><th>gold</th></tr>") in config
    assert ("<tr><th>cwe</th><td>reference</td><td>True</td><td>english, wonderwords</td>"
            "<td>reference</td><td>separate</td><td>-</td></tr>") in config
    assert ("<tr><th>qa_1</th><td>reference</td><td>True</td><td>-</td><td>-</td><td>-</td>"
            "<td>reference</td></tr>") in config
    table = config[:config.index("</table>")]
    assert "units" not in table and "document_tokens" not in table and "<th>ppl</th>" not in table


def test_reports_name_no_task():
    import re

    source = Path(summary_table.__code__.co_filename).parent
    text = "\n".join(p.read_text() for p in [*source.rglob("*.py"), *source.glob("templates/*")])
    for name in ("ppl", "passkey", "niah", "short", "needle_ppl", *GROUPS["ruler"]):
        assert not re.search(rf"[\"']{name}[\"']", text), name


def _relabel(run_dir: Path, old: str, new: str) -> None:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for entry in manifest["methods"]:
        if entry["label"] == old:
            entry["label"] = new
            rows = run_dir / entry["evals"]["all"]["path"] / "rows.jsonl"
            rows.write_text("".join(json.dumps({**json.loads(line), "method": new}) + "\n"
                                    for line in rows.read_text().splitlines()))
    (run_dir / "manifest.json").write_text(json.dumps(manifest))


def test_markdown_escapes_labels(run_dir):
    _relabel(run_dir, "pi", "<b>x</b>")
    md = markdown_summary(load_run(run_dir))
    assert "<b>" not in md
    assert "| &lt;b&gt;x&lt;/b&gt; | pi |" in md


def test_csv_names_from_labels_stay_in_the_tables_folder(tmp_path):
    run_dir = make_run(tmp_path / "deep" / "a" / "b" / "c" / "run")
    _relabel(run_dir, "pi", "x/../../../../NAME")
    out = run_dir / "tables"
    written = write_csv(load_run(run_dir), out)
    assert all(p.resolve().parent == out.resolve() for p in written)
    assert not list(tmp_path.rglob("NAME*"))
    assert any(p.name.startswith("ruler_tasks_x_") for p in written)


def test_configuration_names_the_prompt_building_choices(run_dir):
    _rewrite(run_dir, {m: [_row("qa_1", 1024, 1.0, fill="reference", gold="uniform", count_bos=True),
                           _row("vt", 1024, 0.0, fill="tight")] for m in ("none", "pi")})
    page = render_html(load_run(run_dir))
    config = page[page.index('id="config"'):]
    assert "Prompt-building choices" in config
    assert "<tr><th>vt</th><td>tight</td><td>-</td><td>-</td></tr>" in config
    assert "<td>reference</td><td>uniform</td><td>True</td>" in config

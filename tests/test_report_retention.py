"""The near-lossless half of the report: retention at the original window with its interval, the
headline stating both halves, the long-vs-short figure and the per-method configuration."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from markupsafe import escape

from ropebench.reports import retention
from ropebench.reports.configuration import as_text, configuration_table
from ropebench.reports.export import markdown_summary, write_csv
from ropebench.reports.html import render_html
from ropebench.reports.results import load_run
from ropebench.reports.summary import summary_scores
from ropebench.stats import ratio_interval, wilson

SPEC = {"base": 10000.0, "head_dim": 32, "rotary_dim": 32, "window": 512,
        "partial_rotary_factor": 1.0, "model_type": "llama"}
# Passes out of 40 per (method, length): "a" keeps the window and reaches the target, "b" loses
# the window; the original model cannot read past its window.
PASSES = {"none": {512: 40, 4096: 0}, "a": {512: 40, 4096: 30}, "b": {512: 19, 4096: 10}}
PPL_512 = {"none": [4.8, 5.0, 5.2, 5.0], "a": [4.8, 5.0, 5.2, 5.0], "b": [9.6, 10.0, 10.4, 10.0]}


def _rows(label: str, lengths: tuple[int, ...]) -> list[dict]:
    rows = []
    for length in lengths:
        for i in range(40):
            rows.append({"task": "passkey", "length": length, "method": label,
                         "score": float(i < PASSES[label][length]), "prediction": "", "references": [],
                         "input_tokens": length, "seconds": 0.1, "index": i, "metadata": {}})
    if 512 in lengths:
        rows += [{"task": "ppl", "length": 512, "method": label, "score": value, "prediction": "",
                  "references": [], "input_tokens": 512, "seconds": 0.1, "index": i, "metadata": {}}
                 for i, value in enumerate(PPL_512[label])]
    return rows


def make_run(root: Path, *, labels=("none", "a", "b"), lengths=(512, 4096)) -> Path:
    """A run directory as `ropebench compare` lays it out, with hand-made rows and stage records."""
    methods = []
    for label in labels:
        folders = {k: root / "stages" / k / label for k in ("scaling", "train", "eval")}
        for folder in folders.values():
            folder.mkdir(parents=True)
        m = {"none": 1.0, "a": 1.154701, "b": 1.207944}[label]
        scaling = {"method": {"none": "none", "a": "longrope2", "b": "yarn"}[label],
                   "target_length": 4096, "original_length": 512, "long_factor": [1.0] * 16,
                   "attention_factor": m, "rope_parameters": {}, "short_factor": None,
                   "critical_index": None, "provenance": "searched" if label == "a" else "analytic",
                   "extra": {}}
        (folders["scaling"] / "scaling.json").write_text(json.dumps(scaling))
        done = {"seconds": 3.0, **({"search_evaluations": 1408} if label == "a" else {})}
        (folders["scaling"] / "done").write_text(json.dumps(done))
        entry = {"label": label, "method": scaling["method"], "baseline": label == "none",
                 "scaling": {"path": f"stages/scaling/{label}"}, "train": None,
                 "evals": {"all": {"path": f"stages/eval/{label}"}}}
        if label == "a":  # trained, with everything the trainer records
            (folders["train"] / "done").write_text(json.dumps(
                {"seconds": 42.0, "tokens_short": 300, "tokens_long": 700,
                 "trainable_parameters": 12345}))
            entry["train"] = {"path": f"stages/train/{label}"}
        rows = _rows(label, lengths)
        (folders["eval"] / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (folders["eval"] / "done").write_text("{}")
        methods.append(entry)
    manifest = {"name": "hand-made", "model": "tiny", "target_length": 4096, "spec": SPEC,
                "methods": methods}
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "runlog.jsonl").write_text("")
    return root


@pytest.fixture
def results(tmp_path):
    return load_run(make_run(tmp_path / "run"))


def test_ratio_interval_agrees_with_a_bootstrap_of_the_ratio():
    """MOVER's interval for 19/40 over 36/40 against the percentile bootstrap of the ratio."""
    top, bottom = np.array([1.0] * 19 + [0.0] * 21), np.array([1.0] * 36 + [0.0] * 4)
    rng = np.random.default_rng(0)
    ratios = [top[rng.integers(0, 40, 40)].mean() / bottom[rng.integers(0, 40, 40)].mean()
              for _ in range(20000)]
    low, high = np.percentile(ratios, [2.5, 97.5])
    ratio, mover_low, mover_high = ratio_interval((19 / 40, *wilson(19, 40)), (36 / 40, *wilson(36, 40)))
    assert ratio == pytest.approx(19 / 36)
    assert mover_low == pytest.approx(low, abs=0.03) and mover_high == pytest.approx(high, abs=0.03)
    # An all-pass reference keeps a real interval (Wilson's), never the degenerate [1, 1].
    same = ratio_interval((1.0, *wilson(40, 40)), (1.0, *wilson(40, 40)))
    assert same[1] < 0.95 and same[2] > 1.05
    assert ratio_interval((0.5, 0.4, 0.6), (0.1, 0.0, 0.2))[2] == math.inf
    assert all(math.isnan(x) for x in ratio_interval((0.5, 0.4, 0.6), (0.0, 0.0, 0.1)))


def test_retention_and_its_interval_from_hand_made_rows(results):
    view = retention.primary(results)
    assert view.section.key == "passkey" and (view.short, view.long) == (512, 4096)
    table = view.table
    assert table.loc["a", "score @4096"] == pytest.approx(75.0)
    assert table.loc["b", "score @512"] == pytest.approx(47.5)
    assert table.loc["none", "retained %"] == 100.0 and math.isnan(table.loc["none", "retained % low"])
    # 40/40 against 40/40: 100% with an interval from both Wilson intervals (hand-computed).
    assert table.loc["a", "retained %"] == pytest.approx(100.0)
    assert table.loc["a", "retained % low"] == pytest.approx(91.24, abs=0.01)
    assert table.loc["a", "retained % high"] == pytest.approx(109.60, abs=0.01)
    # 19/40 against 40/40: 47.5%, and the interval lies below 100%.
    assert table.loc["b", "retained %"] == pytest.approx(47.5)
    assert table.loc["b", "retained % low"] == pytest.approx(32.94, abs=0.01)
    assert table.loc["b", "retained % high"] == pytest.approx(63.50, abs=0.01)
    assert table.loc["b", "retained % n"] == 40


def test_lower_is_better_retention_is_original_over_method(results):
    ppl = next(r for r in retention.retentions(results) if not r.section.higher_is_better)
    assert ppl.short == 512 and ppl.long == 512  # measured at the window only
    assert ppl.table.loc["b", "retained %"] == pytest.approx(50.0)  # perplexity doubled
    assert ppl.table.loc["a", "retained %"] == pytest.approx(100.0)
    assert ppl.table.loc["b", "retained % high"] < 100


def test_headline_states_both_halves_and_what_the_intervals_support(results):
    summary, scores = summary_scores(results)
    text = retention.headline(results, summary, scores)
    assert text.startswith("Ranked by")  # the long-context half
    short = text[text.index("Short context ("):]
    assert "at 512 tokens, the original window, relative to the original model none" in short
    assert "kept a 100.0% [91.2, 109.6], b 47.5% [32.9, 63.5]" in short
    assert "support a short-context loss for b" in short
    assert "do not support a loss for a" in short
    assert "they support a keeping more than b" in short
    assert str(escape(text)) in render_html(results)
    assert short in markdown_summary(results)


def test_headline_without_a_baseline_or_a_short_length(tmp_path):
    no_base = load_run(make_run(tmp_path / "nobase", labels=("a", "b")))
    assert "no original-model baseline" in retention.short_context_sentence(no_base)
    assert retention.retentions(no_base) == []
    long_only = load_run(make_run(tmp_path / "long", lengths=(4096,)))
    sentence = retention.short_context_sentence(long_only)
    assert "the original model has no score at or below the original window (512 tokens)" in sentence


def test_configuration_columns_from_the_stage_records(results, tmp_path):
    table = configuration_table(results)
    assert table.loc["a", "search evaluations"] == 1408
    assert (table.loc["a", "train tokens short"], table.loc["a", "train tokens long"]) == (300, 700)
    assert table.loc["a", "trainable parameters"] == 12345
    assert table.loc["a", "train s"] == 42.0
    assert table.loc["b", "attention factor m"] == pytest.approx(1.2079)
    text = as_text(table)
    assert text.loc["a", "attention factor m"] == "1.1547"
    assert text.loc["b", "search evaluations"] == "-" and text.loc["b", "train tokens short"] == "-"
    assert text.loc["none", "trainable parameters"] == "-"
    page = render_html(results)
    assert "Short context kept (near-lossless)" in page and "1.1547" in page and "12345" in page
    assert 'alt="Long-context score against short-context retention per method"' in page
    written = {p.name for p in write_csv(results, tmp_path / "tables")}
    assert {"configuration.csv", "passkey_short_context.csv"} <= written

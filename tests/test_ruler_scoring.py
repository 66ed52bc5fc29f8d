"""RULER scoring and aggregation."""

from __future__ import annotations

import pytest

from ropebench.errors import RopebenchError
from ropebench.tasks.ruler.aggregate import (
    LLAMA2_THRESHOLD,
    default_threshold,
    effective_length,
    wavg_dec,
    wavg_inc,
)
from ropebench.tasks.ruler.scoring import postprocess, string_match_all, string_match_part


def test_postprocess_strips_and_turns_control_characters_into_newlines():
    assert postprocess("  12\t34\x0056 \n") == "12\n34\n56"
    assert postprocess("") == ""


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("", 0.0),
        ("nothing here", 0.0),
        ("1234567", 0.5),
        ("1234567 and 7654321.", 1.0),
        ("12345\t67", 0.0),
    ],
)
def test_string_match_all(prediction, expected):
    assert string_match_all(prediction, ["1234567", "7654321"]) == expected


def test_matching_is_case_insensitive_substring():
    assert string_match_all("The answer: RoBeRt StEvEnSoN!", ["Robert Stevenson"]) == 1.0
    assert string_match_part("in 1998, probably", ["1998", "nineteen"]) == 1.0
    assert string_match_part("", ["1998"]) == 0.0
    assert string_match_all("anything", []) == 0.0


def test_control_characters_split_words():
    # A tab inside a reference-like string must not make it match.
    assert string_match_part("Robert\tStevenson", ["Robert Stevenson"]) == 0.0


def test_weighted_averages_match_rulers_definition():
    per_length = {4096 * 2**i: s for i, s in enumerate([90, 80, 70, 60, 50, 40])}
    assert wavg_inc(per_length) == pytest.approx(
        (90 + 2 * 80 + 3 * 70 + 4 * 60 + 5 * 50 + 6 * 40) / 21
    )
    assert wavg_dec(per_length) == pytest.approx(
        (6 * 90 + 5 * 80 + 4 * 70 + 3 * 60 + 2 * 50 + 40) / 21
    )


def test_effective_length():
    per_length = {4096: 90.0, 8192: 86.0, 16384: 85.6, 32768: 70.0}
    assert effective_length(per_length) == 16384  # RULER's README: exactly 85.6 passes
    assert effective_length(per_length, threshold=60) == 32768
    assert effective_length({4096: 50.0}) is None
    # A failing length below a passing one ends the effective length (the reference rule) ...
    dip = {4096: 90.0, 8192: 80.0, 16384: 88.0}
    assert effective_length(dip) == 4096
    # ... unless the `largest` rule is asked for.
    assert effective_length(dip, rule="largest") == 16384
    with pytest.raises(RopebenchError, match="rule"):
        effective_length(dip, rule="max")


def test_default_threshold_falls_back_to_the_models_own_score():
    assert default_threshold({512: 95.0}, 512) == LLAMA2_THRESHOLD
    assert default_threshold({512: 60.0, 1024: 40.0}, 512) == pytest.approx(54.0)
    assert default_threshold({512: 60.0}) == LLAMA2_THRESHOLD

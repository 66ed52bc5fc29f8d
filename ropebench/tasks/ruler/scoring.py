"""RULER's scoring (NVIDIA/RULER, scripts/eval/synthetic/constants.py and evaluate.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ropebench.tasks.base import Sample
from ropebench.tasks.synthetic import SyntheticTask

_CONTROL = re.compile(r"[\x00-\x1f]")


def postprocess(prediction: str) -> str:
    """Strip, then turn every control character (tabs and newlines included) into a newline."""
    return _CONTROL.sub("\n", prediction.strip()).strip()


def string_match_all(prediction: str, references: Sequence[str]) -> float:
    """Fraction of the references found in the prediction (case-insensitive substring)."""
    if not references:
        return 0.0
    pred = postprocess(prediction).lower()
    return sum(ref.lower() in pred for ref in references) / len(references)


def string_match_part(prediction: str, references: Sequence[str]) -> float:
    """1 if any reference is found in the prediction (case-insensitive substring), else 0."""
    pred = postprocess(prediction).lower()
    return float(any(ref.lower() in pred for ref in references))


METRICS = {"all": string_match_all, "part": string_match_part}


class StringMatchTask(SyntheticTask):
    """A task scored by RULER's string match, as named by each sample's `metric`."""

    def score(self, sample: Sample, prediction: str) -> float:
        return METRICS[sample.metric](prediction, sample.references)

    def settled(self, sample: Sample, prediction: str) -> bool:
        # More text can only add substring matches, so a full score cannot change again.
        return self.score(sample, prediction) >= 1.0


class RulerTask(StringMatchTask):
    """One of RULER's 13 tasks: reported through the RULER group (per-length mean, effective
    length) rather than in a section of its own."""

    group = "ruler"
    group_title = "RULER"
    report = "group"

"""What crosses the task boundary: samples in, tidy result rows out, tasks registered by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ropebench.backends.base import Backend


@dataclass
class Sample:
    """One prompt for the model, built for a target length.

    `prompt` is the task text (chat wrapper included when the model has one); the model is fed
    `prompt + answer_prefix` and generates at most `max_new_tokens`. `answer` is the canonical
    completion (used for teacher-forced scoring and to make training data in the same format).
    """

    task: str
    length: int
    index: int
    prompt: str
    answer_prefix: str
    references: list[str]
    answer: str
    max_new_tokens: int
    metric: str = "all"  # "all" (string_match_all) or "part" (string_match_part)
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def input_text(self) -> str:
        return self.prompt + self.answer_prefix


@dataclass
class Row:
    """One tidy result: one sample of one task at one length for one method."""

    task: str
    length: int
    method: str
    score: float
    prediction: str
    references: list[str]
    input_tokens: int
    seconds: float
    index: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


class Task:
    """A benchmark registered by name (see `ropebench.tasks.registry`).

    `kind` tells the evaluation loop how to run it: "generate" tasks build prompts and score the
    model's greedy completions; "measure" tasks (perplexity, lm-eval) run the model themselves.
    """

    name: str = ""
    kind: str = "generate"
    description: str = ""
    unit: str = "fraction"  # row scores are fractions in [0, 1], or "perplexity"
    per_length: bool = True  # False: run once, rows have length 0 (short-context tasks)


class GenerativeTask(Task):
    """Prompts in, one completion per prompt, a score in [0, 1] per completion."""

    kind = "generate"

    def samples(self, tokenizer, length: int, n: int, seed: int, **options: Any) -> list[Sample]:
        raise NotImplementedError

    def score(self, sample: Sample, prediction: str) -> float:
        raise NotImplementedError

    def settled(self, sample: Sample, prediction: str) -> bool:
        """True once no continuation of `prediction` can change its score, so generation may
        stop early. The default never settles: the row runs to EOS or `max_new_tokens`."""
        return False


class MeasuredTask(Task):
    """Runs the model itself and returns finished rows (the loop fills in `method`)."""

    kind = "measure"

    def measure(
        self, backend: Backend, length: int, *, samples: int, seed: int, options: dict[str, Any]
    ) -> list[Row]:
        """Rows of this task at `length` (`length=0` when `per_length` is False).

        Args:
            backend: the engine to run (`ropebench.backends.base.Backend`); never an nn.Module.
            length: tokens per document or prompt.
            samples: documents (or samples) to average over.
            seed: makes the documents deterministic.
            options: this task's options (`--option task.key=value`).
        Returns:
            Finished rows; the evaluation loop fills in `method`.
        """
        raise NotImplementedError

    def value_row(self, length: int, value: float, seconds: float, **metadata: Any) -> Row:
        """The single row of a measurement that yields one number per length."""
        return Row(
            task=self.name,
            length=length,
            method="",
            score=value,
            prediction="",
            references=[],
            input_tokens=length,
            seconds=round(seconds, 3),
            metadata=metadata,
        )

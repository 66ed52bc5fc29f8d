"""What crosses the task boundary: samples in, tidy result rows out, tasks registered by name."""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from ropebench.backends.base import Backend
from ropebench.settings import field_names, parse_settings, setting


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


# Options every generative task takes: they steer the generation loop, not the samples.
@dataclass
class GenerationOptions:
    batch_size: int = setting(8, min=1)  # rows per decode batch
    max_batch_tokens: int = setting(65536, min=1)  # KV-cache tokens per batch
    engine: str = "fast"  # the HF backend's engine: "fast" or "hf" (`model.generate`)
    stop_at_newline: bool | None = None  # None: the task's own rule (passkey stops at a newline)
    stop_when_settled: bool = True  # end a row once its score can no longer change


@dataclass(frozen=True)
class TaskOptions:
    """One task's options, parsed once (`Task.read_options`) and handed along from there.

    `values` is an instance of the task's `options_class()`: every field cast and checked, the
    task's defaults filled in. `given` names the keys the user set: only those enter a run's
    fingerprints, so an option left at its default keeps the keys runs had before it existed.
    """

    values: Any
    given: tuple[str, ...] = ()

    def given_values(self) -> dict[str, Any]:
        return {key: getattr(self.values, key) for key in self.given}


def _implied_bounds(name: str, annotation: Any) -> dict[str, Any]:
    """Bounds of a generative task's option, from its `samples` parameter: counts and sizes
    (whole numbers) are never negative, and a task generates at least one token."""
    whole = annotation is int or (typing.get_origin(annotation) in (typing.Union, types.UnionType)
                                  and int in typing.get_args(annotation))
    low = 1 if name == "max_new_tokens" else (0 if whole else None)
    return {"min": low, "max": None, "gt": None, "choices": None, "allow_inf": False}


@dataclass
class NoOptions:
    """A task without options."""


class Task:
    """A benchmark registered by name (see `ropebench.tasks.registry`).

    The evaluation loop runs it by its class: a `GenerativeTask` builds prompts and scores the
    model's greedy completions; a `MeasuredTask` (perplexity, lm-eval) runs a backend itself.

    What a task declares, so that the loop, the cost estimate and the reports stay generic:
    - `unit`: "fraction" (row scores in [0, 1], shown x100) or "perplexity" (lower is better);
    - `per_length`: False for tasks run once (rows have length 0);
    - `title` and `report`: the report section it gets, by the name of a report section kind
      ("by_length": a method x length table; "depth_grid": a depth x length heatmap per method;
      "subtasks": a method x sub-task table; "group": shown through its group, e.g. RULER; more
      in docs/report-sections.md), and `group` for the latter;
    - `per_document`: how a measured row's score is built from the per-document values in its
      metadata, so a report can bootstrap over documents: "pooled_nll" (exp of the summed
      `document_nll` over the summed `document_tokens`), "mean_ppl" (the mean of `document_ppl`),
      or "" (no per-document values);
    - `abbrev`: the task's short name in summary columns (default: its name);
    - `stop_at_newline`: generation stops at the first newline (passkey);
    - `Options`: the dataclass of its options, with types, bounds and choices (`settings.setting`);
      a generative task without one has the keyword-only parameters of `samples`, derived
      automatically. Unknown option keys are an error.
    """

    name: str = ""
    description: str = ""
    unit: str = "fraction"
    per_length: bool = True
    title: str = ""
    report: str = "by_length"
    group: str | None = None
    group_title: str = ""  # the group's section title (default: the group name)
    per_document: str = ""
    abbrev: str = ""
    stop_at_newline: bool = False
    Options: type = NoOptions

    @property
    def higher_is_better(self) -> bool:
        return self.unit == "fraction"

    @property
    def display_title(self) -> str:
        return self.title or self.name

    @property
    def short_name(self) -> str:
        return self.abbrev or self.name

    def options_class(self) -> type:
        return self.Options

    def cost_hint(self, samples: int, options: dict[str, Any]) -> float:
        """Work of one length's run, in forward passes over a full-length prompt (for the time
        estimate printed before a plan runs)."""
        return float(samples)

    def prompt_options(self) -> tuple[str, ...]:
        """The options that shape this task's prompts. A sample records the value it used for
        each under the option's own name in its metadata, so a report can show the choices."""
        return ()

    def check_lengths(self, lengths: list[int], options: dict[str, Any]) -> None:
        """Raise a RopebenchError, before any weights load, for a length the task cannot give
        with these options (e.g. a length below every bucket of a bucketed benchmark)."""

    def parse_options(self, values: dict[str, Any]) -> dict[str, Any]:
        """`values` checked against `Options` (known keys, types, bounds, choices), cast; only
        the keys given are returned. A task may check more here (files an option names)."""
        parsed = parse_settings(self.options_class(), values, where=f"{self.name} option")
        return {key: getattr(parsed, key) for key in values}

    def read_options(self, values: dict[str, Any]) -> TaskOptions:
        """The user's `values` for this task, parsed once into its options dataclass."""
        given = self.parse_options(values)
        return TaskOptions(self.options_class()(**given), tuple(given))


class GenerativeTask(Task):
    """Prompts in, one completion per prompt, a score in [0, 1] per completion."""

    # One cached decoding step, relative to a full prefill (measured on CPU, reference shape).
    decode_step_forwards = 0.01

    def cost_hint(self, samples: int, options: dict[str, Any]) -> float:
        new_tokens = options.get("max_new_tokens")
        if new_tokens is None:
            new_tokens = getattr(self.options_class()(), "max_new_tokens", 0)
        return samples * (1.0 + int(new_tokens) * self.decode_step_forwards)

    def prompt_options_class(self) -> type:
        """The dataclass of the options that shape prompts: `Options` where the task declares
        one, else the keyword-only parameters of `samples` (their bounds implied)."""
        cls = type(self)
        if self.Options is not NoOptions:
            return self.Options
        if "_derived_options" not in cls.__dict__:
            hints = typing.get_type_hints(cls.samples)
            params = inspect.signature(cls.samples).parameters.values()
            fields = [(p.name, hints.get(p.name, Any),
                       dataclasses.field(default=p.default, metadata=_implied_bounds(
                           p.name, hints.get(p.name, Any))))
                      for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
            cls._derived_options = dataclasses.make_dataclass(f"{cls.__name__}Prompts", fields)
        return cls._derived_options

    def prompt_options(self) -> tuple[str, ...]:
        return tuple(field_names(self.prompt_options_class()))

    def options_class(self) -> type:
        """The prompt options and `GenerationOptions`, as one dataclass."""
        cls = type(self)
        if "_options_dataclass" not in cls.__dict__:
            cls._options_dataclass = dataclasses.make_dataclass(
                f"{cls.__name__}Options", [],
                bases=(self.prompt_options_class(), GenerationOptions))
        return cls._options_dataclass

    def samples(self, tokenizer, length: int, n: int, seed: int, **options: Any) -> list[Sample]:
        """`n` samples at `length` tokens, deterministic in `seed`; `options`: prompt options."""
        raise NotImplementedError

    def make_samples(self, tokenizer, length: int, n: int, seed: int, options: Any) -> list[Sample]:
        """The samples for parsed options (an instance of `options_class()`), through the
        keyword options of `samples`."""
        return self.samples(tokenizer, length, n, seed,
                            **{key: getattr(options, key) for key in self.prompt_options()})

    def score(self, sample: Sample, prediction: str) -> float:
        raise NotImplementedError

    def settled(self, sample: Sample, prediction: str) -> bool:
        """True once no continuation of `prediction` can change its score, so generation may
        stop early. The default never settles: the row runs to EOS or `max_new_tokens`."""
        return False


class MeasuredTask(Task):
    """Runs the model itself and returns finished rows (the loop fills in `method`)."""

    def measure(
        self, backend: Backend, length: int, *, samples: int, seed: int, options: dict[str, Any]
    ) -> list[Row]:
        """Rows of this task at `length` (`length=0` when `per_length` is False).

        Args:
            backend: the engine to run (`ropebench.backends.base.Backend`); never an nn.Module.
            length: tokens per document or prompt.
            samples: documents (or samples) to average over.
            seed: makes the documents deterministic.
            options: this task's options (`--set task.key=value`).
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

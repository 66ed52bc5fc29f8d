"""The comparison plan: which model, which methods, which stages and which evaluations.

A plan is a YAML file (or CLI flags) like:

    name: my-comparison
    model: reference            # a local HF directory, a hub id, or `reference`
    target_length: 4096
    search: {population: 8, iterations: 3, documents: 2}   # defaults for methods that search
    train: {steps: 40, lr: 1.0e-4, batch_size: 1}          # the same budget for every method
    backend: {name: vllm, max_model_len: 8192}  # the engine of the evaluation stages (default hf)
    methods:
      - none                    # the baseline: the original model, never trained
      - pi
      - {method: yarn, params: {beta_fast: 32}}
      - {method: longrope2, label: longrope2-c20, search: {critical_index: 20}}
    evaluate:
      tasks: [ruler, niah, ppl, passkey]
      lengths: [512, 1024, 2048, 4096]
      samples: 4
      seed: 0

Per method, `search:` / `train:` may be `false` (skip the stage), `true` (use the plan's defaults)
or a mapping of settings laid over the plan's defaults. By default a method searches iff its
extender implements a search, and trains iff the plan has a `train:` section and the method is
not the baseline. Everything is checked by `load_plan` / `validate` before any model is loaded.
The `backend:` engine serves the stages it can (`ropebench.run.backends`); searches and training
run on the HF backend unless the chosen backend says it serves them.

On the command line, `--set SECTION.KEY=VALUE` names the same keys (`train.steps`,
`search.population`, `niah.depths` for `evaluate.options.niah.depths`; `ropebench.run.overrides`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ropebench.errors import RopebenchError
from ropebench.registry import did_you_mean
from ropebench.run.backends import BackendChoice, backend_choice
from ropebench.settings import (
    MAX_SAMPLES,
    MAX_SEED,
    field_names,
    parse_length,
    parse_lengths,
    parse_settings,
)

if TYPE_CHECKING:
    from ropebench.tasks.base import TaskOptions

BASELINE = "none"
PLAN_KEYS = ("name", "model", "target_length", "search", "train", "methods", "evaluate", "out",
             "published", "backend")
METHOD_KEYS = ("method", "label", "params", "search", "train", "factors")
EVALUATE_KEYS = ("tasks", "lengths", "samples", "seed", "options")


@dataclass(frozen=True)
class MethodPlan:
    """One method of the comparison; `label` names it in the run directory and the report."""

    label: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] | None = None  # SearchSettings overrides; None = use rescale()
    train: dict[str, Any] | None = None  # TrainSettings overrides; None = no training
    factors: str | None = None  # a factors file (JSON, HF longrope config.json, LongRoPE CSV) instead of searching

    @property
    def is_baseline(self) -> bool:
        return self.method == BASELINE


@dataclass(frozen=True)
class EvalPlan:
    tasks: tuple[str, ...]
    lengths: tuple[int, ...]
    samples: int = 4
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def task_options(self) -> dict[str, TaskOptions]:
        """Each task's options, parsed once (first by `validate`, before anything loads)."""
        from ropebench.run.evaluate import resolve_options
        from ropebench.tasks import expand_tasks, get_task

        return resolve_options(dict(self.options), [get_task(n) for n in expand_tasks(self.tasks)])


@dataclass(frozen=True)
class Plan:
    model: str
    target_length: int
    methods: tuple[MethodPlan, ...]
    evaluate: EvalPlan
    name: str = "comparison"
    out: str | None = None
    published: tuple[str, ...] = ()  # published rows the report sets beside this run
    backend: BackendChoice = field(default_factory=BackendChoice)

    def method(self, label: str) -> MethodPlan:
        return next(m for m in self.methods if m.label == label)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_plan(path: str | Path, overrides: dict[str, Any] | None = None) -> Plan:
    """Read a YAML plan, lay CLI `overrides` over it (`merge`; a top-level None is a flag not
    given), and validate it."""
    import yaml

    from ropebench.bounded import MAX_PLAN_BYTES, load_yaml, read_bounded

    path = Path(path)
    if not path.exists():
        raise RopebenchError(f"plan file {path} does not exist; give the path of a YAML plan")
    text = read_bounded(path, "plan", MAX_PLAN_BYTES)
    try:
        raw = load_yaml(text, f"plan {path}") or {}
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0]
        raise RopebenchError(f"plan {path} is not valid YAML ({first}); fix the syntax") from err
    if not isinstance(raw, dict):
        raise RopebenchError(f"plan {path} must be a YAML mapping with keys {', '.join(PLAN_KEYS)}")
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    if isinstance(raw.get("backend"), str):  # `backend: vllm`, so --set backend.KEY merges in
        raw = {**raw, "backend": {"name": raw["backend"]}}
    return plan_from_dict(merge(raw, given), source=str(path))


def plan_from_dict(raw: dict[str, Any], *, source: str = "plan") -> Plan:
    """Build a Plan from plain data (YAML or CLI flags); every mistake is a RopebenchError."""
    _check_keys(raw, PLAN_KEYS, source)
    for key in ("model", "target_length", "methods", "evaluate"):
        if raw.get(key) in (None, [], {}):
            raise RopebenchError(f"{source}: `{key}` is missing; every plan names {key}")
    search_defaults = _section(raw.get("search"), f"{source}: search")
    train_defaults = _section(raw.get("train"), f"{source}: train")
    _check_defaults(search_defaults, train_defaults, source)
    has_train = raw.get("train") not in (None, False)
    if not isinstance(raw["methods"], list):
        raise RopebenchError(f"{source}: `methods` must be a list of method names or mappings")
    methods = [
        _method(entry, f"{source}: methods[{i}]", search_defaults, train_defaults, has_train)
        for i, entry in enumerate(raw["methods"])
    ]
    if not any(m.is_baseline for m in methods):
        # The original model is the yardstick of every comparison (e.g. % short-context retained).
        methods.insert(0, MethodPlan(label=BASELINE, method=BASELINE))
    labels = [m.label for m in methods]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise RopebenchError(
            f"{source}: method labels must be unique, {', '.join(duplicates)} repeats; "
            "give repeated methods a distinct `label:`"
        )
    plan = Plan(
        model=str(raw["model"]),
        target_length=parse_length(raw["target_length"], f"{source}: target_length"),
        methods=tuple(methods),
        evaluate=_evaluate(raw["evaluate"], f"{source}: evaluate"),
        name=str(raw.get("name") or "comparison"),
        out=None if raw.get("out") is None else str(raw["out"]),
        published=_published(raw.get("published"), source),
        backend=backend_choice(raw.get("backend"), f"{source}: backend"),
    )
    validate(plan, source=source)
    return plan


def _published(value: Any, source: str) -> tuple[str, ...]:
    """Names of published rows (`ropebench.run.published`), each checked."""
    from ropebench.run.published import get_published

    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RopebenchError(f"{source}: `published` must be a name or a list of published rows")
    for name in names:
        try:
            get_published(name)
        except RopebenchError as err:
            raise RopebenchError(f"{source}: {err}") from None
    return tuple(names)


def validate(plan: Plan, *, source: str = "plan") -> None:
    """Check the plan against the installed methods, tasks and settings, and the model's config."""
    from ropebench.methods import available_extenders, get_extender
    from ropebench.model.load import load_config_dict, resolve_model_path
    from ropebench.rope.spec import RopeSpec
    from ropebench.tasks import get_task
    from ropebench.tasks.chat_check import check_folder_template
    from ropebench.training.trainer import TrainSettings, check_arms

    spec = RopeSpec.from_config(load_config_dict(plan.model))
    plan.backend.backend_class.check_source(None)  # e.g. vllm not installed: say so now
    if plan.target_length <= spec.window:
        raise RopebenchError(
            f"{source}: target_length {plan.target_length} does not extend {plan.model}'s "
            f"{spec.window}-token window; choose a longer target"
        )
    known = available_extenders()
    for i, m in enumerate(plan.methods):
        where = f"{source}: methods[{i}] ({m.label})"
        if m.method not in known:
            raise RopebenchError(f"{where}: unknown method {m.method!r}; known: {', '.join(sorted(known))}")
        try:
            extender = get_extender(m.method, m.params)
            if "export" not in extender.engines:  # attention methods: settings checked on the model
                extender.rescale(spec, plan.target_length)
        except RopebenchError as err:
            raise RopebenchError(f"{where}: params: {err}") from err
        if "export" not in extender.engines and plan.backend.for_stage("eval").name != "hf":
            raise RopebenchError(f"{where}: {m.method} changes attention inside the HF model and "
                                 f"runs on the hf backend only; drop it or remove the plan's "
                                 f"backend: {plan.backend.name}")
        if m.train is not None and "export" not in extender.engines:
            raise RopebenchError(f"{where}: {m.method} is training-free and its model cannot be "
                                 "saved as a HF directory; drop its train section")
        if m.search is not None:
            _check_settings(m.search, search_settings_class(m.method), f"{where}: search")
        if m.train is not None:
            _check_settings(m.train, TrainSettings, f"{where}: train")
            settings = parse_settings(TrainSettings, m.train, where="train")
            try:
                check_arms(settings, get_extender(m.method, m.params), spec.window,
                           plan.target_length)
            except RopebenchError as err:
                raise RopebenchError(f"{where}: train: {err}") from err
        if m.factors is not None:
            from ropebench.bounded import check_factors_file
            from ropebench.methods import load_scaling

            try:
                check_factors_file(m.factors)
                load_scaling(m.factors, spec, plan.target_length, m.method)
            except RopebenchError as err:
                raise RopebenchError(f"{where}: {err}") from err
    try:
        resolved = plan.evaluate.task_options
        for name, options in resolved.items():
            get_task(name).check_lengths(list(plan.evaluate.lengths), options.given_values())
    except RopebenchError as err:
        raise RopebenchError(f"{source}: evaluate: {err}") from err
    check_folder_template(resolve_model_path(plan.model), resolved)
    longest = max(plan.evaluate.lengths)
    if longest > plan.target_length:
        raise RopebenchError(
            f"{source}: evaluate: length {longest} exceeds target_length {plan.target_length}; "
            "evaluate at or below the target"
        )


def search_settings_class(method: str) -> type:
    """The settings dataclass of a method's search (the shared base when it declares none)."""
    from ropebench.methods import get_extender
    from ropebench.methods.base import SearchSettings

    return get_extender(method).search_settings_class or SearchSettings


def searches(method: str) -> bool:
    """True when the extender implements its own search (LongRoPE family, plugins that search)."""
    from ropebench.methods import available_extenders
    from ropebench.methods.base import Extender

    cls = available_extenders().get(method)
    return cls is not None and cls.search is not Extender.search


def trainable(method: str) -> bool:
    """False for a method that changes attention at inference only (training refuses it)."""
    from ropebench.methods import available_extenders

    cls = available_extenders().get(method)
    return cls is None or getattr(cls, "trainable", True)


def _method(entry: Any, where: str, search_defaults: dict, train_defaults: dict,
            has_train: bool) -> MethodPlan:
    if isinstance(entry, str):
        entry = {"method": entry}
    if not isinstance(entry, dict) or not entry.get("method"):
        raise RopebenchError(f"{where}: give a method name or a mapping with a `method:` key")
    _check_keys(entry, METHOD_KEYS, where)
    method = str(entry["method"])
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        raise RopebenchError(f"{where}: params must be a mapping of the method's settings")
    factors = entry.get("factors")
    if method == BASELINE:
        given = [key for key in ("params", "search", "train", "factors") if entry.get(key)]
        if given:
            raise RopebenchError(
                f"{where}: the baseline `{BASELINE}` is the original model as it is, so it takes "
                f"no {given[0]}:; remove it, or name the method that should get it")
    default_search = factors is None and searches(method)
    # The plan-wide `train:` reaches every method that can train; a training-free method (an
    # attention method) is evaluated as it is, as the baseline is.
    default_train = has_train and method != BASELINE and trainable(method)
    return MethodPlan(
        label=check_label(str(entry.get("label") or method), where),
        method=method,
        params=dict(params),
        search=_stage(entry.get("search", default_search), search_defaults, f"{where}: search"),
        train=_stage(entry.get("train", default_train), train_defaults, f"{where}: train"),
        factors=None if factors is None else str(factors),
    )


def _stage(value: Any, defaults: dict, where: str) -> dict[str, Any] | None:
    """`false`/`null` -> skip, `true` -> the plan's defaults, a mapping -> defaults + mapping."""
    if value is None or value is False:
        return None
    if value is True:
        return dict(defaults)
    return {**defaults, **_section(value, where)}


def _section(value: Any, where: str) -> dict[str, Any]:
    if value in (None, True, False):
        return {}
    if not isinstance(value, dict):
        raise RopebenchError(f"{where} must be a mapping of settings, true or false")
    return dict(value)


def _evaluate(raw: Any, where: str) -> EvalPlan:
    if not isinstance(raw, dict):
        raise RopebenchError(f"{where} must be a mapping with keys {', '.join(EVALUATE_KEYS)}")
    _check_keys(raw, EVALUATE_KEYS, where)
    tasks = raw.get("tasks")
    if isinstance(tasks, str):
        tasks = [t.strip() for t in tasks.split(",") if t.strip()]
    if not tasks or not isinstance(tasks, list):
        raise RopebenchError(f"{where}: `tasks` must list at least one task")
    lengths = raw.get("lengths")
    if isinstance(lengths, (int, str)):
        lengths = [x for x in str(lengths).split(",") if x.strip()]
    if not lengths or not isinstance(lengths, list):
        raise RopebenchError(f"{where}: `lengths` must list at least one context length")
    lengths = parse_lengths(lengths, f"{where}: lengths")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise RopebenchError(f"{where}: `options` must be a mapping")
    return EvalPlan(
        tasks=tuple(str(t) for t in tasks),
        lengths=tuple(sorted(set(lengths))),
        samples=_positive_int(raw.get("samples", 4), f"{where}: samples", MAX_SAMPLES),
        seed=_bounded_int(_int(raw.get("seed", 0), f"{where}: seed"), f"{where}: seed", 0, MAX_SEED),
        options=dict(options),
    )


def _check_defaults(search: dict[str, Any], train: dict[str, Any], source: str) -> None:
    """The plan-wide `search:` and `train:` are checked even where no method uses them: a key no
    search takes, or a bad training setting, is a mistake whichever methods run."""
    from ropebench.methods import available_extenders
    from ropebench.methods.base import SearchSettings
    from ropebench.training.trainer import TrainSettings

    known = dict.fromkeys(field_names(SearchSettings))
    for name in available_extenders():
        if searches(name):
            known.update(dict.fromkeys(field_names(search_settings_class(name))))
    unknown = [key for key in search if key not in known]
    if unknown:
        key = unknown[0]
        raise RopebenchError(f"{source}: unknown search setting {key!r}"
                             f"{did_you_mean(key, list(known))}; known: {', '.join(known)}")
    _check_settings(train, TrainSettings, f"{source}: train")


def _check_settings(values: dict[str, Any], cls: type, where: str) -> None:
    """Every key a field of the settings dataclass, every value of its type and in its range."""
    parse_settings(cls, values, where=where)


def _check_keys(raw: dict, known: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise RopebenchError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(known)}")


LABEL_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,99}"


def check_label(label: str, where: str = "--label") -> str:
    """A method label names files and folders: letters, digits and . _ + = - only, no `..`."""
    import re

    if not re.fullmatch(LABEL_PATTERN, label) or ".." in label:
        raise RopebenchError(
            f"{where}: label {label!r} may hold only letters, digits and . _ + = - (at most 100, "
            "starting with a letter or digit, no '..'); e.g. yarn-s16"
        )
    return label


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise RopebenchError(f"{where}: expected an integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise RopebenchError(f"{where}: expected a whole number, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise RopebenchError(f"{where}: expected an integer, got {value!r}") from err


def _positive_int(value: Any, where: str, most: int) -> int:
    return _bounded_int(_int(value, where), where, 1, most)


def _bounded_int(number: int, where: str, least: int, most: int) -> int:
    if number < least:
        raise RopebenchError(f"{where}: expected a {'positive' if least == 1 else 'non-negative'} "
                             f"integer, got {number!r}")
    if number > most:
        raise RopebenchError(f"{where}: {number} is above the maximum {most}; give at most {most}")
    return number


def merge(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` laid over plan data: mappings merge key by key at every depth (so `--set
    niah.depths=4` keeps the plan's other niah options), anything else replaces the plan's."""
    merged = dict(raw)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged

"""`--set SECTION.KEY=VALUE`: one spelling for every setting on the command line, in plan terms.

A section is a configuration dataclass and a place in a plan file, so a key means the same in
both: `--set train.steps=50` is a plan's `train: {steps: 50}`.

    section       its keys are the fields of                   in a plan
    params.KEY    the method's settings (its `config_class`)   a method's `params:`
    search.KEY    the method's search settings                 `search:`
    train.KEY     `TrainSettings`                              `train:`
    TASK.KEY      one task's options, e.g. niah.depths         `evaluate: {options: {TASK: {KEY:}}}`
    tasks.KEY     option KEY of every task that takes it       `evaluate: {options: {KEY:}}`
    backend.KEY   the backend's engine options                 `backend: {name: NAME, KEY:}`

On a plan (`compare`, `demo`) a setting is written into the plan at that place and the plan's own
precedence applies: a method's `search:` / `train:` mapping and a task's own option win over the
plan-wide value. Each command takes the sections it uses; VALUE is read as a plan file reads it
(`settings.read_value`), and keys are checked by the dataclasses' own strict parser.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.registry import did_you_mean
from ropebench.settings import parse_overrides

PARAMS, SEARCH, TRAIN, TASKS, BACKEND = "params", "search", "train", "tasks", "backend"
SECTIONS = (PARAMS, SEARCH, TRAIN, TASKS, BACKEND)
TASK = "TASK"  # in the sections a command takes: every task's name is a section of its own


@dataclass(frozen=True)
class Overrides:
    """One command's `--set` items, by section."""

    params: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    # Shaped as a plan's `evaluate.options`: shared keys, and one mapping per task.
    options: dict[str, Any] = field(default_factory=dict)
    backend: dict[str, Any] = field(default_factory=dict)

    def as_plan(self) -> dict[str, Any]:
        """These settings as the plan keys they stand for, to lay over a plan (`load_plan`)."""
        plan: dict[str, Any] = {}
        if self.search:
            plan["search"] = dict(self.search)
        if self.train:
            plan["train"] = dict(self.train)
        if self.options:
            plan["evaluate"] = {"options": dict(self.options)}
        if self.backend:
            plan["backend"] = dict(self.backend)
        return plan


def parse_set(items: Iterable[str], takes: tuple[str, ...], command: str) -> Overrides:
    """`--set` items of `ropebench COMMAND`, which takes the sections `takes`, by section."""
    fixed: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS if name != TASKS}
    options: dict[str, Any] = {}
    for key, value in parse_overrides(items).items():
        section, _, name = key.partition(".")
        if not name or "." in name:
            raise RopebenchError(_no_section(key, value, takes, command))
        check_section(section, takes, command)
        if section == TASKS:
            options[name] = value
        elif section in fixed:
            fixed[section][name] = value
        else:
            options.setdefault(section, {})[name] = value
    return Overrides(options=options, **fixed)


def check_section(section: str, takes: tuple[str, ...], command: str) -> None:
    """A one-line error unless `section` is one that `ropebench COMMAND` takes."""
    tasks = _task_names() if TASK in takes or section not in SECTIONS else []
    if (section in takes and section != TASK) or (TASK in takes and section in tasks):
        return
    if section in SECTIONS or section in tasks:
        what = f"{section}.KEY settings" if section in SECTIONS else f"task options ({section}.KEY)"
        where = (" (a plan gives a method's params in its entry, e.g. {method: yarn, params: "
                 "{beta_fast: 16}})" if section == PARAMS else "")
        raise RopebenchError(f"`ropebench {command}` takes no {what}{where}; "
                             f"it takes {listing(takes)}")
    known = list(SECTIONS) + (tasks if TASK in takes else [])
    raise RopebenchError(f"unknown --set section {section!r}{did_you_mean(section, known)}; "
                         f"`ropebench {command}` takes {listing(takes)}")


def listing(takes: tuple[str, ...]) -> str:
    """`params.KEY, tasks.KEY and TASK.KEY (TASK: a task's name, e.g. niah)`."""
    names = [f"{name}.KEY" for name in takes]
    text = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return text + (" (TASK: a task's name, e.g. niah)" if TASK in takes else "")


def _no_section(key: str, value: Any, takes: tuple[str, ...], command: str) -> str:
    """The fix for a key without one section (`factor=2`, a plan path like
    `evaluate.options.niah.depths`): the section of `takes` that has its last part."""
    from ropebench.run.setting_keys import section_of

    name = key.rsplit(".", 1)[-1]
    hint = section_of(name, takes) or next(s for s in takes if s != TASK)
    return (f"--set {key}={value} is not SECTION.KEY=VALUE; write e.g. --set {hint}.{name}="
            f"{value}; `ropebench {command}` takes {listing(takes)}")


def _task_names() -> list[str]:
    from ropebench.tasks.registry import TASKS as REGISTERED

    return REGISTERED.names()

"""The keys of every `--set` section, read from the dataclasses behind it: the help text of each
command, and the hint that names the section of a key given without one."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

from ropebench.run.overrides import BACKEND, PARAMS, SEARCH, TASK, TASKS, TRAIN
from ropebench.settings import field_names

Group = tuple[str, list[str]]  # (who takes the keys: methods, tasks or backends; the keys)

TITLES = {
    PARAMS: "the method's settings (a method's `params:` in a plan)",
    SEARCH: "the factor search (`search:` in a plan)",
    TRAIN: "fine-tuning (`train:` in a plan)",
    TASK: "one task's options (`evaluate: {options: {TASK: ...}}` in a plan)",
    TASKS: "any TASK key, for every task that takes it (`evaluate: {options: ...}` in a plan)",
    BACKEND: "the backend's engine options; a plan's `backend: {name: NAME, KEY: ...}`",
}
GENERATIVE = "every generative task"
WIDTH = 96


def groups(section: str) -> list[Group]:
    """Who takes which keys in `section` (TASK and TASKS: the task options)."""
    if section == PARAMS:
        from ropebench.methods import available_extenders

        return _grouped((name, field_names(cls.config_class))
                        for name, cls in sorted(available_extenders().items()))
    if section == SEARCH:
        from ropebench.methods import available_extenders
        from ropebench.run.plan import search_settings_class, searches

        return _grouped((name, field_names(search_settings_class(name)))
                        for name in sorted(available_extenders()) if searches(name))
    if section == TRAIN:
        from ropebench.training.trainer import TrainSettings

        return [("", field_names(TrainSettings))]
    if section == BACKEND:
        from ropebench.backends.base import BACKENDS

        return _grouped((name, field_names(cls.options_class))
                        for name, cls in sorted(BACKENDS.items().items())
                        if cls.options_class is not None)
    from ropebench.tasks import get_task
    from ropebench.tasks.base import GenerationOptions
    from ropebench.tasks.registry import TASKS as REGISTERED

    shared = field_names(GenerationOptions)
    own = ((name, [k for k in field_names(get_task(name).options_class()) if k not in shared])
           for name in sorted(REGISTERED.names()))
    return [(GENERATIVE, shared), *_grouped(own)]


def section_of(key: str, takes: tuple[str, ...]) -> str | None:
    """The section of `takes` that has `key` (a task option held by several tasks: `tasks`)."""
    for section in takes:
        if section in (TASK, TASKS):
            holders = [who for who, keys in groups(TASK) if key in keys]
            names = [name for who in holders for name in who.split(", ")]
            if len(names) == 1 and names[0] != GENERATIVE and TASK in takes:
                return names[0]
            if names and TASKS in takes:
                return TASKS
        elif any(key in keys for _, keys in groups(section)):
            return section
    return None


def describe(takes: tuple[str, ...]) -> str:
    """The help text of the sections a command takes, with every key they hold."""
    lines = ["settings (--set SECTION.KEY=VALUE; VALUE as in a plan: 50, 3.0e-4, true, [a, b]):"]
    for section in takes:
        lines.append(f"  {section}.KEY: {TITLES[section]}")
        if section == TASKS:  # the same keys as TASK.KEY, listed there
            continue
        for who, keys in groups(section):
            text = f"{who}: {', '.join(keys)}" if who else ", ".join(keys)
            lines += textwrap.wrap(text, WIDTH, initial_indent=" " * 6,
                                   subsequent_indent=" " * 8, break_on_hyphens=False)
    return "\n".join(lines)


def _grouped(pairs: Iterable[tuple[str, list[str]]]) -> list[Group]:
    """Names with the same keys on one line, in first-seen order; names without keys left out."""
    by_keys: dict[tuple[str, ...], list[str]] = {}
    for name, keys in pairs:
        if keys:
            by_keys.setdefault(tuple(keys), []).append(name)
    return [(", ".join(names), list(keys)) for keys, names in by_keys.items()]

"""Task registry: built-ins, groups, and plugins from the `ropebench.tasks` entry point group."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from ropebench.errors import RopebenchError
from ropebench.tasks.base import Task

RULER_TASKS = (
    "niah_single_1",
    "niah_single_2",
    "niah_single_3",
    "niah_multikey_1",
    "niah_multikey_2",
    "niah_multikey_3",
    "niah_multivalue",
    "niah_multiquery",
    "vt",
    "cwe",
    "fwe",
    "qa_1",
    "qa_2",
)
GROUPS: dict[str, tuple[str, ...]] = {"ruler": RULER_TASKS}


def _builtin_tasks() -> list[Task]:
    from ropebench.tasks.grid import NeedleGrid
    from ropebench.tasks.needle_ppl import NeedlePPLTask
    from ropebench.tasks.passkey import Passkey
    from ropebench.tasks.ppl import PerplexityTask
    from ropebench.tasks.ruler.cwe import RulerCWE
    from ropebench.tasks.ruler.fwe import RulerFWE
    from ropebench.tasks.ruler.niah import NIAH_TASKS, RulerNiah
    from ropebench.tasks.ruler.qa import RulerQA
    from ropebench.tasks.ruler.vt import RulerVT
    from ropebench.tasks.short import ShortTasks

    tasks: list[Task] = [RulerNiah(name, config) for name, config in NIAH_TASKS.items()]
    tasks += [
        RulerVT(),
        RulerCWE(),
        RulerFWE(),
        RulerQA("qa_1", "squad"),
        RulerQA("qa_2", "hotpotqa"),
    ]
    tasks += [NeedleGrid(), PerplexityTask(), Passkey(), NeedlePPLTask(), ShortTasks()]
    return tasks


def _plugin_tasks() -> list[Task]:
    from importlib.metadata import entry_points

    return [ep.load()() for ep in entry_points(group="ropebench.tasks")]


@functools.lru_cache(maxsize=1)
def available_tasks() -> dict[str, Task]:
    """Every registered task by name (built-ins first; a plugin may not shadow a built-in)."""
    registry: dict[str, Task] = {}
    for task in _builtin_tasks() + _plugin_tasks():
        if task.name in registry or task.name in GROUPS:
            raise RopebenchError(f"task name {task.name!r} is registered twice; rename the plugin")
        registry[task.name] = task
    return registry


def get_task(name: str) -> Task:
    tasks = available_tasks()
    if name not in tasks:
        raise RopebenchError(
            f"unknown task {name!r}; choose from {', '.join(sorted(tasks))} or a group ({', '.join(GROUPS)})"
        )
    return tasks[name]


def expand_tasks(names: Iterable[str]) -> list[str]:
    """Replace group names by their members, keep order, drop duplicates, check every name."""
    out: list[str] = []
    for name in names:
        for member in GROUPS.get(name, (name,)):
            get_task(member)
            if member not in out:
                out.append(member)
    return out

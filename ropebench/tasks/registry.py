"""Task registry: built-ins, groups, and plugins from the `ropebench.tasks` entry point group."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ropebench.errors import RopebenchError
from ropebench.registry import Registry, did_you_mean
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
NOLIMA_TASKS = ("nolima_1", "nolima_2")
GROUPS: dict[str, tuple[str, ...]] = {"ruler": RULER_TASKS, "nolima": NOLIMA_TASKS}


def _check_task(obj: Any) -> Task:
    task = obj() if isinstance(obj, type) else obj
    if not isinstance(task, Task):
        raise RopebenchError(f"task plugin {obj!r} is not a ropebench.tasks.base.Task; fix the plugin")
    if task.name in GROUPS:
        raise RopebenchError(f"task name {task.name!r} is a group name; rename the plugin")
    return task


def _builtin_tasks() -> None:
    from ropebench.tasks.grid import NeedleGrid
    from ropebench.tasks.lmeval_long import LmevalLong
    from ropebench.tasks.mrcr import MRCR
    from ropebench.tasks.needle_ppl import NeedlePPLDepthsTask, NeedlePPLTask
    from ropebench.tasks.nolima import NonLiteralNiah
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
    tasks += [NonLiteralNiah("nolima_1", "noise"), NonLiteralNiah("nolima_2", "essay"), MRCR()]
    tasks += [NeedleGrid(), PerplexityTask(), Passkey(), NeedlePPLTask(), NeedlePPLDepthsTask(),
              ShortTasks(), LmevalLong()]
    for task in tasks:
        TASKS.add(task.name, task)


TASKS: Registry[Task] = Registry("task", "ropebench.tasks", check=_check_task,
                                 builtins=_builtin_tasks)


def available_tasks() -> dict[str, Task]:
    """Every registered task by name (built-ins first; a plugin may not shadow a built-in)."""
    return TASKS.items()


def get_task(name: str) -> Task:
    return TASKS.get(name)


def expand_tasks(names: Iterable[str]) -> list[str]:
    """Replace group names by their members, keep order, drop duplicates, check every name."""
    out: list[str] = []
    for name in names:
        if name not in GROUPS and name not in TASKS:
            known = TASKS.names() + list(GROUPS)
            raise RopebenchError(
                f"unknown task {name!r}{did_you_mean(name, known)}; choose from "
                f"{', '.join(TASKS.names())} or a group ({', '.join(GROUPS)})"
            )
        for member in GROUPS.get(name, (name,)):
            if member not in out:
                out.append(member)
    return out

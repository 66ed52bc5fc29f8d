"""Report section kinds: each module in this package lays out one kind of section (a group of
tasks, a by-length task, a depth grid, sub-tasks) and registers it in `SECTION_KINDS`; a task
names the kind it wants in `Task.report`. A new kind is one new module here (or a plugin in the
`ropebench.report_sections` entry-point group); nothing else in the report changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pandas as pd

from ropebench.errors import RopebenchError
from ropebench.registry import Registry
from ropebench.reports.cells import task_of, task_order
from ropebench.reports.sections.base import ReportData, Section, SectionKind, Table
from ropebench.tasks import Task

__all__ = ["SECTION_KINDS", "ReportData", "Section", "SectionKind", "Table", "kind_of",
           "section_kind", "sections"]

FALLBACK = "by_length"  # the kind of a task that names none registered


def _load_builtins() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")


def _as_kind(obj: Any) -> SectionKind:
    kind = obj() if isinstance(obj, type) else obj
    if not isinstance(kind, SectionKind):
        raise RopebenchError(f"report section plugin {obj!r} is not a SectionKind")
    return kind


SECTION_KINDS: Registry[SectionKind] = Registry(
    "report section kind", "ropebench.report_sections", check=_as_kind, builtins=_load_builtins)


def section_kind(cls: type[SectionKind]) -> type[SectionKind]:
    """Class decorator: register one instance of the kind under its `name`."""
    SECTION_KINDS.add(cls.name, cls())
    return cls


def kind_of(section: Section) -> SectionKind:
    return SECTION_KINDS.get(section.kind)


def _kind_for(task: Task) -> SectionKind:
    """The kind the task names, if registered and it takes the task; else the fallback."""
    if task.report in SECTION_KINDS:
        kind = SECTION_KINDS.get(task.report)
        if kind.takes(task):
            return kind
    return SECTION_KINDS.get(FALLBACK)


def sections(rows: pd.DataFrame) -> list[Section]:
    """The report's task sections, by their kind's rank (groups first), then in registry order."""
    found: dict[tuple[str, str], Section] = {}
    for name in task_order(list(dict.fromkeys(rows["task"]))):
        task = task_of(name)
        kind = _kind_for(task)
        key = (kind.name, kind.section_key(task))
        if key not in found:
            found[key] = kind.new_section(task)
        found[key].tasks.append(name)
    for section in found.values():
        kind_of(section).finish(section)
    return sorted(found.values(), key=lambda section: kind_of(section).rank)

"""`ropebench list`: the registered extenders and tasks, plugins included."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of tables"
    )


def run(args: argparse.Namespace) -> int:
    from ropebench.methods.base import available_extenders, plugin_names
    from ropebench.tasks import GROUPS, available_tasks

    extenders = available_extenders()
    plugins = plugin_names()
    tasks = available_tasks()
    if args.json:
        print(
            json.dumps(
                {
                    "extenders": {
                        name: {"description": cls.description, "plugin": name in plugins}
                        for name, cls in extenders.items()
                    },
                    "tasks": {name: task.description for name, task in tasks.items()},
                    "groups": {name: list(members) for name, members in GROUPS.items()},
                },
                indent=2,
            )
        )
        return 0

    print("Extenders (--method):")
    width = max(map(len, extenders))
    for name, cls in sorted(extenders.items()):
        origin = " [plugin]" if name in plugins else ""
        print(f"  {name:<{width}}  {cls.description}{origin}")
    print("\nTasks (--tasks):")
    width = max(map(len, [*tasks, *GROUPS]))
    for name, task in tasks.items():
        print(f"  {name:<{width}}  {task.description}")
    for name, members in GROUPS.items():
        print(f"  {name:<{width}}  group: {', '.join(members)}")
    return 0

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
                        name: {"description": cls.description, "plugin": name in plugins,
                               "engines": list(cls.engines), "elsewhere": cls.runs_elsewhere}
                        for name, cls in extenders.items()
                    },
                    "tasks": {name: task.description for name, task in tasks.items()},
                    "groups": {name: list(members) for name, members in GROUPS.items()},
                },
                indent=2,
            )
        )
        return 0

    print("Extenders (--method), with the engines each runs on "
          "(hf: ropebench's hf backend, vllm: the vllm backend, export: `extend`'s HF directory):")
    width = max(map(len, extenders))
    for name, cls in sorted(extenders.items()):
        origin = " [plugin]" if name in plugins else ""
        engines = ",".join(cls.engines)
        print(f"  {name:<{width}}  [{engines}] {cls.description}{origin}")
        if cls.runs_elsewhere:
            print(f"  {'':<{width}}  also: {cls.runs_elsewhere}")
    print("\nTasks (--tasks):")
    width = max(map(len, [*tasks, *GROUPS]))
    for name, task in tasks.items():
        print(f"  {name:<{width}}  {task.description}")
    for name, members in GROUPS.items():
        print(f"  {name:<{width}}  group: {', '.join(members)}")
    return 0

"""The run log: one JSON line per event (run start with versions, stage start/finish with timings).

Append-only, so an interrupted and resumed run keeps the history of every attempt.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from ropebench.io import JsonlWriter, read_jsonl

PACKAGES = ("ropebench", "torch", "transformers", "lm_eval", "accelerate", "pandas", "matplotlib")


def environment() -> dict[str, Any]:
    """Versions and hardware, recorded at the start of every run and shown in the report."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "versions": versions,
    }


class RunLog:
    """Appends timestamped events to `path` (JSON lines)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def event(self, name: str, /, **data: Any) -> None:
        record = {"event": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **data}
        JsonlWriter(self.path).write(record)

    def events(self) -> list[dict[str, Any]]:
        return read_jsonl(self.path)

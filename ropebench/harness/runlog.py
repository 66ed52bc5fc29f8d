"""The run log: one JSON line per event (run start with versions, stage start/finish with timings).

Append-only, so an interrupted and resumed run keeps the history of every attempt.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, default=str) + "\n")

    def events(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so readers never see half a file: a temp file in the same folder, then rename."""
    write_text_atomic(path, json.dumps(data, indent=2, default=str))


def write_text_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

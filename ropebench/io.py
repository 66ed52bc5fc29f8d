"""Files that survive interruption: atomic writes, and JSON-lines logs with one rule for a torn line.

Atomic: the text goes to a temporary file in the same folder, is flushed to disk, then renamed
over the target, so a reader (or a resumed run) sees the old file or the new one, never half.

JSON lines are appended one record per line and flushed. A process killed mid-write can leave
only the *last* line incomplete (it has no newline): readers drop that torn tail, and writers
truncate it before appending. Any other line that is not valid JSON is corruption, not an
interruption: reading stops with an error naming the file and line.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError


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


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON written atomically (see the module docstring)."""
    write_text_atomic(path, json.dumps(data, indent=2, default=str))


def read_json(path: Path, what: str = "file") -> Any:
    """A JSON file, or the one-line error that names it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RopebenchError(f"cannot read {what} {path}: {err}; fix or delete it") from err


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete record of a JSON-lines file ([] if it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise RopebenchError(f"cannot read {path}: {err}; fix or delete it") from err
    lines = text.split("\n")
    complete, tail = lines[:-1], lines[-1]  # `tail` is "" unless the last write was torn
    records = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise RopebenchError(
                f"{path}:{number} is not valid JSON ({err.msg}); the file is corrupt: delete that "
                "line (its result is recomputed) or the file"
            ) from err
    del tail  # a torn last line is an interrupted append: its record is recomputed
    return records


class JsonlWriter:
    """Appends one JSON record per line, flushed, after truncating a torn last line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
            handle.flush()


def _drop_torn_tail(path: Path) -> None:
    if not path.is_file():
        return
    with path.open("rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


LOCK_FILE = ".ropebench.lock"
_held: dict[str, tuple[int, int]] = {}  # lock path -> (fd, depth): re-entrant within a process


class FolderLock:
    """An exclusive lock on an output folder (or next to an output file), held while writing.

    A second process that asks for it stops at once with a one-line error; the lock vanishes with
    the process that holds it (`flock`), so a killed run never leaves a stale lock. Re-entrant
    within one process (a comparison run locks its folder, then each evaluation its own)."""

    def __init__(self, folder: Path, what: str = "folder", name: str = LOCK_FILE) -> None:
        self.path = Path(folder) / name
        self.what = what

    def __enter__(self) -> FolderLock:
        import fcntl

        key = str(self.path.resolve())
        if key in _held:
            fd, depth = _held[key]
            _held[key] = (fd, depth + 1)
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RopebenchError(
                f"another ropebench process (pid {holder}) is writing to {self.path.parent}; "
                f"wait for it to finish or give this run another {self.what}"
            ) from err
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        _held[key] = (fd, 1)
        return self

    def __exit__(self, *exc: object) -> None:
        key = str(self.path.resolve())
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
            return
        del _held[key]
        os.close(fd)  # releases the flock; the file stays (removing it would race a new holder)

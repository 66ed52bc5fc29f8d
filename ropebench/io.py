"""Files that survive interruption: atomic writes, and JSON-lines logs with one rule for a torn line.

Atomic: the text goes to a temporary file in the same folder, is flushed to disk, then renamed
over the target, so a reader (or a resumed run) sees the old file or the new one, never half.

JSON lines are appended one record per line and flushed. A process killed mid-write can leave
only the *last* line incomplete (it has no newline): readers drop that torn tail, and writers
truncate it before appending. Any other line that is not valid JSON is corruption, not an
interruption: reading stops with an error naming the file and line.

No write follows a symbolic link: below a folder this process has locked (an output folder)
neither the file written nor any folder on the way may be one (`check_no_links`); appends and
locks open with O_NOFOLLOW everywhere, and an atomic write's rename replaces a link elsewhere.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError


def write_text_atomic(path: Path, text: str) -> None:
    """`text` written to `path` atomically, with the mode the user's umask gives a new file
    (`tempfile` alone would leave it 0600); a link at `path` is refused, never replaced."""
    path = Path(path)
    check_no_links(path)
    make_folder(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~user_umask())
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            sync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sync(fd: int) -> None:
    """Flush a file to disk (one place, so a test can make the disk "full")."""
    os.fsync(fd)


_UMASK: list[int] = []


def user_umask() -> int:
    """The process's umask, read once (Linux reports it in /proc; elsewhere set and restore)."""
    if not _UMASK:
        try:
            line = next(x for x in Path("/proc/self/status").read_text().splitlines()
                        if x.startswith("Umask:"))
            _UMASK.append(int(line.split()[1], 8))
        except (OSError, StopIteration, ValueError):
            mask = os.umask(0o022)
            os.umask(mask)
            _UMASK.append(mask)
    return _UMASK[0]


def check_no_links(path: Path) -> None:
    """Refuse to write at `path` when it lies below a folder this process has locked (an output
    folder) and it, or a folder between the two, is a symbolic link: a link placed inside --out
    must never redirect a write to a file outside it. The locked folder itself may be a link:
    the user chose it. (Elsewhere, e.g. a user-level cache, an atomic write replaces a link
    rather than writing through it.)"""
    path = Path(os.path.abspath(path))
    roots = [Path(root) for pair in _roots.values() for root in pair]
    for root in roots:
        if root in path.parents:
            below = path.relative_to(root).parts
            for depth in range(1, len(below) + 1):
                step = root.joinpath(*below[:depth])
                if step.is_symlink():
                    raise _link_error(step)


def _link_error(link: Path) -> RopebenchError:
    return RopebenchError(
        f"{link} is a symbolic link; ropebench never writes through a link inside an output "
        "folder: remove the link (or choose another --out)"
    )


def make_folder(folder: Path) -> None:
    """`mkdir -p`, refusing to pass through a link below a locked output folder."""
    check_no_links(folder)
    Path(folder).mkdir(parents=True, exist_ok=True)


def open_no_follow(path: Path, flags: int) -> int:
    """`os.open` that refuses a link (O_NOFOLLOW) or anything but a regular file at `path`."""
    check_no_links(path)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise _link_error(Path(path)) from err
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RopebenchError(f"{path} is not a regular file; remove it (ropebench writes a file "
                             "there) or choose another --out")
    return fd


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
        make_folder(self.path.parent)
        _drop_torn_tail(self.path)

    def write(self, record: dict[str, Any]) -> None:
        fd = open_no_follow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        with os.fdopen(fd, "a") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
            handle.flush()


def _drop_torn_tail(path: Path) -> None:
    if not os.path.lexists(path):
        return
    with os.fdopen(open_no_follow(path, os.O_RDWR), "rb+") as handle:
        data = handle.read()
        if data and not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


LOCK_FILE = ".ropebench.lock"
_held: dict[str, tuple[int, int]] = {}  # lock path -> (fd, depth): re-entrant within a process
# lock path -> the folder it guards, as given and as resolved (see `check_no_links`)
_roots: dict[str, tuple[str, str]] = {}


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
        folder = Path(os.path.abspath(self.path.parent))
        if any(Path(root) in folder.parents for pair in _roots.values() for root in pair):
            check_no_links(folder)  # a folder inside a locked one: no link on the way
        folder.mkdir(parents=True, exist_ok=True)  # a top folder may be a link: the user's choice
        fd = open_no_follow(self.path, os.O_RDWR | os.O_CREAT)
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
        _roots[key] = (os.path.abspath(self.path.parent), os.path.realpath(self.path.parent))
        return self

    def __exit__(self, *exc: object) -> None:
        key = str(self.path.resolve())
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
            return
        del _held[key]
        del _roots[key]
        os.close(fd)  # releases the flock; the file stays (removing it would race a new holder)

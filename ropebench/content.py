"""Content hashes of input files: the one way ropebench tells whether an input changed.

A file's identity is the sha256 of its bytes, read in blocks (never whole into memory). Hashing a
multi-GB checkpoint on every run would be slow, so a hash is remembered per absolute path together
with the file's size, mtime_ns, inode, device and ctime_ns; it is reused only while all of them
are unchanged, and the content is hashed again whenever any of them changes. ctime cannot be set
from user space (`cp -p`, `rsync -a` and `os.utime` all move it), so weights copied over with their
old mtime, or overwritten in place with other bytes of the same size, are always hashed again.

A file changed within a moment of being hashed could keep all five values (timestamps have a
coarse granularity), so a hash is remembered only for files last changed `_SETTLED_NS` before the
read began ("racily clean" files are hashed again next time, as git does with its index).

The remembered hashes live in `content-hashes.json` in ropebench's cache folder (`ROPEBENCH_CACHE`,
else `$XDG_CACHE_HOME/ropebench`, else `~/.cache/ropebench`); the cache only saves time: a lost,
unreadable or unwritable cache just means hashing again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CACHE_NAME = "content-hashes.json"
_CACHE_ENV = "ROPEBENCH_CACHE"
_BLOCK = 1 << 22  # bytes read at a time
_MAX_ENTRIES = 4096  # the oldest entries beyond this are forgotten
_SETTLED_NS = 2_000_000_000  # a file changed less than this before hashing is not remembered
_STAT_FIELDS = ("size", "mtime_ns", "ino", "dev", "ctime_ns")
_HEX = re.compile(r"[0-9a-f]{64}")


def cache_dir() -> Path:
    """ropebench's cache folder (derived data only: deleting it costs time, never results)."""
    root = os.environ.get(_CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ropebench"
    )
    return Path(root)


def stream_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read block by block."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp(stat: os.stat_result) -> dict[str, int]:
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ino": stat.st_ino,
            "dev": stat.st_dev, "ctime_ns": stat.st_ctime_ns}


def _valid(entry: Any) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
            and bool(_HEX.fullmatch(entry["sha256"]))
            and all(type(entry.get(k)) is int for k in _STAT_FIELDS))


class HashCache:
    """Remembered content hashes, keyed by absolute path (see the module docstring)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else cache_dir() / CACHE_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        self.hashed: list[str] = []  # paths whose bytes were read by this cache (tests count them)
        self._changed = False
        try:
            data = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            data = {}
        if isinstance(data, dict):  # anything else (a foreign file) is ignored, then replaced
            self.entries = {k: v for k, v in data.items() if isinstance(k, str) and _valid(v)}

    def sha256(self, path: Path) -> str:
        """The content hash of `path`: remembered while its stat is unchanged, else read."""
        key = str(Path(path).resolve())
        stamp = _stamp(os.stat(key))
        entry = self.entries.get(key)
        if entry is not None and all(entry[k] == stamp[k] for k in _STAT_FIELDS):
            return entry["sha256"]
        for _ in range(3):  # a file rewritten while being read is read again
            started = time.time_ns()
            digest = stream_sha256(Path(key))
            self.hashed.append(key)
            after = _stamp(os.stat(key))
            if after == stamp:
                break
            stamp = after
        else:
            return digest  # still changing: use this read, remember nothing
        settled = started - max(stamp["mtime_ns"], stamp["ctime_ns"]) > _SETTLED_NS
        self.entries.pop(key, None)
        if settled:
            self.entries[key] = {**stamp, "sha256": digest}
            self._changed = True
        return digest

    def save(self) -> None:
        """Write the cache (atomically); failing to write only costs time next run."""
        if not self._changed:
            return
        keep = dict(list(self.entries.items())[-_MAX_ENTRIES:])
        try:
            from ropebench.io import write_text_atomic

            write_text_atomic(self.path, json.dumps(keep))
            self._changed = False
        except OSError:
            pass


def content_sha256(path: Path, cache: HashCache | None = None) -> str:
    """The content hash of one file (through `cache`, or a cache opened and saved for this call)."""
    own = cache is None
    cache = cache or HashCache()
    digest = cache.sha256(Path(path))
    if own:
        cache.save()
    return digest


def files_sha256(files: Iterable[tuple[str, Path]], cache: HashCache | None = None) -> list[list[str]]:
    """`[[name, sha256], ...]` for (name, path) pairs, in the order given, one cache for all."""
    own = cache is None
    cache = cache or HashCache()
    hashed = [[name, cache.sha256(Path(path))] for name, path in files]
    if own:
        cache.save()
    return hashed

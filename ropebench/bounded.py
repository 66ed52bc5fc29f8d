"""Reading what a user hands in (plans, factor files, configs) with bounds on size and shape.

A tiny file must not cost unbounded memory or time: only regular files are read where a file is
expected (`/dev/zero` or a FIFO would never end), at most a fixed number of bytes, and YAML may
use anchors and aliases only while the document they expand to stays small (an "alias bomb" of
a few hundred bytes expands to billions of nodes). A key given twice in a YAML mapping is a
mistake, not "the last one wins".
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from ropebench.errors import RopebenchError

MiB = 1024 * 1024
MAX_PLAN_BYTES = 1 * MiB  # a plan of hundreds of methods is a few KiB
MAX_FACTORS_BYTES = 16 * MiB  # a factors file with a long search history
MAX_CONFIG_BYTES = 16 * MiB  # config.json (some carry long factor lists or label maps)
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 100_000  # nodes of a document with every alias expanded


def check_regular_file(path: str | Path, what: str) -> Path:
    """`path` as a Path if it names a regular file (links to one are fine); else the one line."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as err:
        raise RopebenchError(f"{what} {path} does not exist; check the path") from err
    except OSError as err:
        raise RopebenchError(f"cannot read {what} {path}: {err.strerror}; check the path") from err
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise RopebenchError(f"{what} {path} is {kind}; give the path of a file")
    return path


def check_factors_file(path: str | Path) -> None:
    """A factors file is a regular file within MAX_FACTORS_BYTES (checked before it is parsed)."""
    read_bounded(path, "factors file", MAX_FACTORS_BYTES)


def read_bounded(path: str | Path, what: str, limit: int) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes, or the one-line error."""
    path = check_regular_file(path, what)
    try:
        # O_NONBLOCK: a FIFO swapped in after the check must not block the open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as err:
        raise RopebenchError(f"cannot read {what} {path}: {err.strerror}; check the path") from err
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise RopebenchError(f"{what} {path} is not a regular file; give the path of a file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        size = f"{limit // MiB} MiB" if limit % MiB == 0 else f"{limit} bytes"
        raise RopebenchError(f"{what} {path} is larger than {size}, the most "
                             f"ropebench reads for it; check that it is the right file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RopebenchError(f"{what} {path} is not UTF-8 text ({err.reason} at byte "
                             f"{err.start}); save it as UTF-8") from err


def load_yaml(text: str, where: str) -> Any:
    """YAML (JSON is YAML) with safe tags only, bounded aliases and no repeated keys."""
    loader = _loader_class()(text)
    loader.where = where
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, where)
        return loader.construct_document(node)
    except RecursionError as err:
        raise RopebenchError(f"{where}: the YAML is nested too deeply; flatten it") from err
    finally:
        loader.dispose()


def _loader_class():
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """SafeLoader that counts aliases while composing and refuses a repeated mapping key."""

        aliases = 0

        def compose_node(self, parent, index):  # noqa: ANN001  (PyYAML's signature)
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    mark = self.peek_event().start_mark
                    raise RopebenchError(
                        f"{self.where}: more than {MAX_YAML_ALIASES} YAML aliases (line "
                        f"{mark.line + 1}); write the values out instead of repeating *anchors")
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):  # noqa: ANN001
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *defaults` may be overridden by the mapping's own keys
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise RopebenchError(
                            f"{self.where}: key {key!r} appears twice in one mapping (lines "
                            f"{seen[key]} and {key_node.start_mark.line + 1}); keep one of them")
                    seen[key] = key_node.start_mark.line + 1
                except TypeError:
                    continue  # an unhashable key: the constructor reports it
            return super().construct_mapping(node, deep=deep)

    StrictLoader.where = "YAML"
    return StrictLoader


def _check_expansion(root: Any, where: str) -> None:
    """Count the nodes `root` expands to (an alias counts as the whole node it names, memoised
    per node, so the count itself is cheap); refuse past MAX_YAML_NODES or a cycle."""
    import yaml

    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise RopebenchError(f"{where}: a YAML alias refers to itself; remove the cycle")
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        sizes[key] = total
        if total > MAX_YAML_NODES:
            raise RopebenchError(
                f"{where}: the YAML expands to more than {MAX_YAML_NODES} values (aliases "
                "repeating aliases); write the plan without nested *anchors")
        return total

    size(root)

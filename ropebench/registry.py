"""One registry type for everything ropebench looks up by name: methods, tasks, backends, fitness
functions, haystacks.

Built-ins register with the `register` decorator; third-party packages add entries through an
entry-point group (for example `ropebench.extenders` or `ropebench.tasks`):

    [project.entry-points."ropebench.tasks"]
    my-task = "my_package.module:MyTask"

A built-in wins a name clash; a plugin that fails to import is reported when it is asked for (and
skipped with a warning when listing, so one broken package does not hide the others). An unknown
name ends in a one-line error that suggests the closest known names.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from ropebench.errors import RopebenchError

T = TypeVar("T")


def did_you_mean(name: str, known: list[str]) -> str:
    """' (did you mean x?)' for the closest known names, or ''."""
    close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


class Registry(Generic[T]):
    """Entries by name. `kind` names them in messages ("method", "task"...)."""

    def __init__(
        self,
        kind: str,
        entry_point_group: str | None = None,
        *,
        check: Callable[[Any], T] | None = None,
        builtins: Callable[[], None] | None = None,
        plural: str | None = None,
    ) -> None:
        """`check` validates (and may convert) a loaded plugin object; `builtins` imports the
        modules whose decorators fill the registry, on first use (keeps `import` cheap)."""
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.group = entry_point_group
        self._check = check
        self._load_builtins = builtins
        self._builtins: dict[str, T] = {}
        self._plugins: dict[str, T] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: `@REGISTRY.register("name")`, or without a name for objects with `.name`."""

        def decorate(obj: T) -> T:
            key = name if name is not None else obj.name  # type: ignore[attr-defined]
            if key in self._builtins:
                raise RopebenchError(f"{self.kind} {key!r} is registered twice; rename one")
            self._builtins[key] = obj
            return obj

        return decorate

    def add(self, name: str, obj: T) -> None:
        """Register a built-in that is not defined by a decorated class or function."""
        self.register(name)(obj)

    def _ensure_builtins(self) -> None:
        if self._load_builtins is not None:
            load, self._load_builtins = self._load_builtins, None
            load()

    def _entry_points(self) -> dict[str, Any]:
        if self.group is None:
            return {}
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=self.group)}

    def _load(self, ep: Any) -> T:
        if ep.name in self._plugins:
            return self._plugins[ep.name]
        try:
            obj = ep.load()
        except Exception as err:  # any import-time failure of third-party code
            raise RopebenchError(
                f"{self.kind} plugin {ep.name!r} ({ep.value}) failed to load: {err}; "
                "fix or uninstall the plugin package"
            ) from err
        if self._check is not None:
            obj = self._check(obj)
        self._plugins[ep.name] = obj
        return obj

    def plugin_names(self) -> set[str]:
        self._ensure_builtins()
        return set(self._entry_points()) - set(self._builtins)

    def names(self) -> list[str]:
        self._ensure_builtins()
        return sorted(set(self._builtins) | set(self._entry_points()))

    def get(self, name: str) -> T:
        self._ensure_builtins()
        if name in self._builtins:
            return self._builtins[name]
        plugins = self._entry_points()
        if name not in plugins:
            known = self.names()
            raise RopebenchError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, known)}; "
                f"known {self.plural}: {', '.join(known) or 'none'}"
            )
        return self._load(plugins[name])

    def items(self) -> dict[str, T]:
        """Every entry: built-ins, then the plugins that load (the others warn)."""
        self._ensure_builtins()
        found = dict(self._builtins)
        for name, ep in self._entry_points().items():
            if name in found:
                continue
            try:
                found[name] = self._load(ep)
            except RopebenchError as err:
                warnings.warn(str(err), stacklevel=2)
        return found

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

"""The extender interface every RoPE extension method implements, and the registry of methods.

An extender has three verbs:
- `rescale(spec, target_length)`: the analytic factors for a target length (pure math, no model);
- `search(...)`: look for better factors on a model (default: no search, return `rescale`);
- `train(...)`: fine-tune the model at the target length with this RoPE (default: plain
  fine-tuning; LongRoPE2 overrides it with mixed context window training).

Third-party methods register through the entry-point group `ropebench.extenders`:

    [project.entry-points."ropebench.extenders"]
    my-method = "my_package.module:MyExtender"
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ropebench.errors import RopebenchError
from ropebench.extenders.rope import RopeSpec

ENTRY_POINT_GROUP = "ropebench.extenders"


@dataclass(frozen=True)
class RopeScaling:
    """Everything needed to patch a model with a method, or to export it.

    `long_factor` holds the per-pair factors f_i >= 1 (`inv_freq_i = theta_i / f_i`) used at the
    target length. `short_factor` is set only for switching methods (the LongRoPE family): it is
    used while the sequence fits the pretrained window. `rope_parameters` is the transformers 5
    `rope_parameters` dict that expresses the same scaling, so vanilla transformers can load it.
    """

    method: str
    target_length: int
    original_length: int
    long_factor: tuple[float, ...]
    attention_factor: float
    rope_parameters: dict[str, Any]
    short_factor: tuple[float, ...] | None = None
    critical_index: int | None = None
    provenance: str = "analytic"  # "analytic", "given" (--set), "searched" or "file"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def switches(self) -> bool:
        """True when the RoPE changes once the sequence outgrows the pretrained window."""
        return self.short_factor is not None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["long_factor"] = list(self.long_factor)
        data["short_factor"] = None if self.short_factor is None else list(self.short_factor)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RopeScaling:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["long_factor"] = tuple(float(x) for x in kwargs["long_factor"])
        if kwargs.get("short_factor") is not None:
            kwargs["short_factor"] = tuple(float(x) for x in kwargs["short_factor"])
        return cls(**kwargs)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))


@dataclass
class ExtenderConfig:
    """Base of every method's configuration dataclass (subclasses add the method's knobs)."""

    def updated(self, overrides: dict[str, Any]) -> ExtenderConfig:
        """A copy with `key=value` overrides (as given by `--set`), values cast to field types."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes: dict[str, Any] = {}
        for key, raw in overrides.items():
            if key not in fields:
                known = ", ".join(sorted(fields)) or "none"
                raise RopebenchError(
                    f"unknown setting {key!r} for this method; known settings: {known}"
                )
            changes[key] = _cast(raw, str(fields[key].type), key)
        return dataclasses.replace(self, **changes)


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`["key=value", ...]` (repeated `--set` options) as a dict."""
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RopebenchError(f"--set {item!r} is not KEY=VALUE; write e.g. --set factor=8")
        overrides[key.strip()] = value.strip()
    return overrides


def _cast(raw: Any, annotation: str, key: str) -> Any:
    """Cast a `--set` string to the field's annotated type (bool, int, float, float lists)."""
    if not isinstance(raw, str):
        return tuple(raw) if isinstance(raw, list) else raw
    if raw.lower() == "none" and "None" in annotation:
        return None
    try:
        if annotation.startswith("bool"):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if annotation.startswith("int"):
            return int(raw)
        if annotation.startswith("float"):
            return float(raw)
        if annotation.startswith("tuple[float"):
            # a comma-separated list, with or without brackets: "1,1.5,2" or "[1, 1.5, 2]"
            return tuple(float(x) for x in raw.strip("[]() ").split(",") if x.strip())
    except ValueError as err:
        raise RopebenchError(
            f"setting {key}={raw!r} is not a valid {annotation}; give a value of that type"
        ) from err
    return raw


def hf_rope_parameters(spec: RopeSpec, rope_type: str, **fields: Any) -> dict[str, Any]:
    """A transformers 5 `rope_parameters` dict for `spec` (the base and partial rotary kept)."""
    # partial_rotary_factor is always written: a replaced dict without it would silently rotate
    # the whole head, and Phi-3's config validation requires it.
    return {
        "rope_type": rope_type,
        "rope_theta": spec.base,
        "partial_rotary_factor": spec.partial_rotary_factor,
        **fields,
    }


class Extender(ABC):
    """One RoPE context-extension method. Subclasses set `name` and `config_class`."""

    name: ClassVar[str]
    config_class: ClassVar[type[ExtenderConfig]] = ExtenderConfig
    description: ClassVar[str] = ""

    def __init__(self, config: ExtenderConfig | None = None):
        self.config = config if config is not None else self.config_class()

    @abstractmethod
    def rescale(self, spec: RopeSpec, target_length: int) -> RopeScaling:
        """Analytic factors that stretch `spec.window` to `target_length`."""

    def search(
        self,
        model,
        tokenizer,
        spec: RopeSpec,
        target_length: int,
        settings=None,
        *,
        checkpoint: Path | None = None,
    ) -> RopeScaling:
        """Search factors on `model`. Methods without a search return their analytic factors."""
        return self.rescale(spec, target_length)

    def train(self, model, tokenizer, scaling: RopeScaling, settings, *, out_dir: Path):
        """Fine-tune `model` at `scaling.target_length` with this RoPE; returns a TrainResult."""
        from ropebench.harness.train import train_model

        return train_model(model, tokenizer, scaling, settings, out_dir=out_dir, mixed=False)


_BUILTINS: dict[str, type[Extender]] = {}


def register(cls: type[Extender]) -> type[Extender]:
    """Class decorator for built-in extenders."""
    _BUILTINS[cls.name] = cls
    return cls


def _plugin_entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_plugin(ep: Any) -> type[Extender]:
    try:
        cls = ep.load()
    except Exception as err:  # any import-time failure of third-party code
        raise RopebenchError(
            f"extender plugin {ep.name!r} ({ep.value}) failed to load: {err}; "
            "fix or uninstall the plugin package"
        ) from err
    if not (isinstance(cls, type) and issubclass(cls, Extender)):
        raise RopebenchError(
            f"extender plugin {ep.name!r} ({ep.value}) is not an Extender subclass; "
            "point the entry point at a ropebench.extenders.base.Extender subclass"
        )
    return cls


def plugin_names() -> set[str]:
    """Names registered through the `ropebench.extenders` entry-point group."""
    return set(_plugin_entry_points()) - set(_BUILTINS)


def available_extenders() -> dict[str, type[Extender]]:
    """Every extender by name: the built-ins, then entry-point plugins.

    Built-ins win a name clash. A plugin that fails to load is skipped with a warning here (so
    one broken package does not hide the others) and reported as an error by `get_extender`.
    """
    import ropebench.extenders  # noqa: F401  (imports the built-in modules, which register)

    found = dict(_BUILTINS)
    for name, ep in _plugin_entry_points().items():
        if name in found:
            continue
        try:
            found[name] = _load_plugin(ep)
        except RopebenchError as err:
            warnings.warn(str(err), stacklevel=2)
    return found


def get_extender(name: str, overrides: dict[str, Any] | None = None) -> Extender:
    """Instantiate the extender `name`, applying `key=value` config overrides."""
    import ropebench.extenders  # noqa: F401

    if name in _BUILTINS:
        cls = _BUILTINS[name]
    else:
        plugins = _plugin_entry_points()
        if name not in plugins:
            known = sorted(set(_BUILTINS) | set(plugins))
            raise RopebenchError(f"unknown method {name!r}; known methods: {', '.join(known)}")
        cls = _load_plugin(plugins[name])
    config = cls.config_class()
    if overrides:
        config = config.updated(overrides)
    return cls(config)

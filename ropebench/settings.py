"""One strict way from user input to configuration dataclasses.

Every setting a user can give (`--set section.key=value`, a plan's YAML, a factors file) goes
through `parse_settings`: unknown keys are an error with a did-you-mean, strings are cast to the
field's annotated type, numbers must be finite, whole numbers stay whole, and the bounds a field
declares with `setting(...)` are checked, all before any weights load.

    @dataclass
    class TrainSettings:
        steps: int = setting(100, min=1)
        lr: float = setting(2e-5, gt=0)

    parse_settings(TrainSettings, {"steps": "50"}, where="train")  # -> TrainSettings(steps=50)
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from ropebench.errors import RopebenchError
from ropebench.registry import did_you_mean

D = TypeVar("D")

# Upper bounds a real run stays far below; a value past them is a typo (1e12 for 1e3), not a
# request, and would exhaust memory or time before failing on its own.
MAX_TOKENS = 1 << 24  # context lengths, documents, strides: 16,777,216 tokens
MAX_SAMPLES = 100_000  # samples per task and length
MAX_SEED = 2**32 - 1
MAX_COUNT = 10_000_000  # any other whole-number setting without its own maximum

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    min: float | None = None,  # noqa: A002  (reads best at the call site)
    max: float | None = None,  # noqa: A002
    gt: float | None = None,
    choices: Iterable[Any] | None = None,
    allow_inf: bool = False,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with bounds (`min <= v <= max`, `v > gt`) or a set of allowed values."""
    metadata = {"min": min, "max": max, "gt": gt, "allow_inf": allow_inf,
                "choices": tuple(choices) if choices is not None else None}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def parse_length(value: Any, where: str) -> int:
    """A context length in tokens as users write it: 4096, "4096" or "4k" (x 1024); a whole
    number from 1 to MAX_TOKENS. The one reader of lengths: flags, plans and `--set` values."""
    text = str(value).strip().lower()
    if isinstance(value, bool) or not text:
        raise RopebenchError(f"{where} must be whole numbers of tokens (integers) like 512,1024,4k; got {value!r}")
    scale = 1024 if text.endswith("k") else 1
    try:
        number = int(text.removesuffix("k")) * scale
    except ValueError as err:
        if isinstance(value, float) and value.is_integer():
            number = int(value)
        else:
            raise RopebenchError(f"{where} must be whole numbers of tokens (integers) like 512,1024,4k; "
                                 f"got {value!r}") from err
    if number < 1:
        raise RopebenchError(f"{where} must be positive integers; got {value!r}")
    if number > MAX_TOKENS:
        raise RopebenchError(f"{where}: {number} is above the maximum {MAX_TOKENS} tokens; give "
                             "shorter lengths")
    return number


def parse_lengths(value: Any, where: str) -> list[int]:
    """Lengths as a comma-separated text ("512,1024,4k") or a list, in the order given."""
    parts = value if isinstance(value, list | tuple) else [
        p for p in str(value).split(",") if p.strip()]
    if not parts:
        raise RopebenchError(f"{where} must list at least one context length, e.g. 512,1024,4k")
    return [parse_length(part, where) for part in parts]


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """`["key=value", ...]` (the repeated `--set`) as a dict; keys may be dotted, the last of a
    repeated key wins. A value is read as a plan file reads it (YAML: `50`, `3.0e-4`, `true`,
    `[1, 2]`), so a setting means the same on the command line and in a plan; text that is no
    YAML value, and an empty value, stay text."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RopebenchError(f"--set {item!r} is not KEY=VALUE; write e.g. --set train.steps=50")
        overrides[key.strip()] = read_value(value.strip())
    return overrides


def read_value(text: str) -> Any:
    """One `KEY=VALUE` value as a YAML scalar or list; empty or unreadable text stays text (so
    `search.baselines=` is the empty list, not null)."""
    import yaml

    from ropebench.bounded import load_yaml

    if not text:
        return text
    try:
        return load_yaml(text, f"--set value {text[:40]!r}")
    except yaml.YAMLError:
        return text


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """`key: old -> new` for every leaf where two nested mappings differ (long values cut), so an
    error can say which input changed."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if old == new:
        return []

    def short(value: Any) -> str:
        text = repr(value)
        return text if len(text) < 40 else f"{text[:37]}..."

    return [f"{prefix.rstrip('.')}: {short(old)} -> {short(new)}"]


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def parse_settings(cls: type[D], values: Mapping[str, Any] | None, *, where: str,
                   base: D | None = None) -> D:
    """An instance of dataclass `cls` from `values` (over `base` or the defaults), strictly."""
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in values if k not in fields]
    if unknown:
        key = unknown[0]
        raise RopebenchError(
            f"unknown {where} setting {key!r}{did_you_mean(key, list(fields))}; "
            f"known: {', '.join(fields) or 'none'}"
        )
    changes = {
        key: _coerce(raw, hints[key], f"{where}.{key}", fields[key].metadata)
        for key, raw in values.items()
    }
    try:
        if base is not None:
            return dataclasses.replace(base, **changes)
        return cls(**changes)
    except (TypeError, ValueError) as err:
        raise RopebenchError(f"invalid {where} settings: {err}") from err


def check_bounds(name: str, value: Any, meta: Mapping[str, Any]) -> None:
    """Raise the one-line error if `value` breaks the bounds of its `setting(...)`."""
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise RopebenchError(
            f"{name}={value!r} is not allowed{did_you_mean(str(value), [str(c) for c in choices])}; "
            f"choose from {', '.join(map(str, choices))}"
        )
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if isinstance(value, float) and math.isnan(value):
        raise RopebenchError(f"{name} is NaN; give a finite number")
    if isinstance(value, float) and math.isinf(value) and not meta.get("allow_inf"):
        raise RopebenchError(f"{name} is infinite; give a finite number")
    low, high, above = meta.get("min"), meta.get("max"), meta.get("gt")
    if high is None and isinstance(value, int):
        high = MAX_COUNT  # every whole number has a ceiling (a count, a size, a step)
    if low is not None and value < low:
        raise RopebenchError(f"{name}={value} is below its minimum {low}; give a value >= {low}")
    if high is not None and value > high:
        raise RopebenchError(f"{name}={value} is above its maximum {high}; give a value <= {high}")
    if above is not None and value <= above:
        raise RopebenchError(f"{name}={value} must be greater than {above}")


def check_choices(instance: Any, where: str) -> None:
    """Every field of a dataclass instance that declares choices holds one of them (for
    instances built in code, which `parse_settings` never saw)."""
    for f in dataclasses.fields(instance):
        if f.metadata.get("choices") is not None:
            check_bounds(f"{where}.{f.name}", getattr(instance, f.name), {"choices": f.metadata["choices"]})


def validate(instance: Any, where: str) -> None:
    """Check every field of a dataclass instance against its declared bounds (recursively)."""
    for f in dataclasses.fields(instance):
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value, f"{where}.{f.name}")
            continue
        items = value if isinstance(value, tuple | list) else (value,)
        for item in items:
            if isinstance(item, float) and not math.isfinite(item) and not f.metadata.get("allow_inf"):
                raise RopebenchError(f"{where}.{f.name} holds {item}; give finite numbers")
            if not isinstance(value, tuple | list):
                check_bounds(f"{where}.{f.name}", item, f.metadata)
            elif f.metadata.get("min") is not None or f.metadata.get("gt") is not None:
                check_bounds(f"{where}.{f.name}", item, f.metadata)


def _coerce(raw: Any, annotation: Any, name: str, meta: Mapping[str, Any]) -> Any:
    value = _cast(raw, annotation, name)
    if isinstance(value, tuple):
        for item in value:
            if isinstance(item, int | float) and not isinstance(item, bool):
                check_bounds(name, item, {**meta, "choices": None})
    else:
        check_bounds(name, value, meta)
    return value


def _cast(raw: Any, annotation: Any, name: str) -> Any:
    """`raw` as a value of `annotation`, or the one-line error that says what to give."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return _cast_union(raw, typing.get_args(annotation), name)
    if dataclasses.is_dataclass(annotation):
        return _cast_dataclass(raw, annotation, name)
    if origin in (tuple, list):
        return _cast_sequence(raw, origin, typing.get_args(annotation), name)
    if origin is dict or annotation is dict:
        if not isinstance(raw, Mapping):
            raise RopebenchError(f"{name} must be a mapping, got {raw!r}")
        return dict(raw)
    scalar = _SCALARS.get(annotation)
    return raw if scalar is None else scalar(raw, name)


def _cast_union(raw: Any, args: tuple[Any, ...], name: str) -> Any:
    """None (or the text none / null) where the union allows it, else the first member type
    that takes the value; the first member's error when none does."""
    if type(None) in args and (raw is None or (isinstance(raw, str)
                                               and raw.lower() in ("none", "null"))):
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _cast(raw, arg, name)
        except RopebenchError as err:
            errors.append(str(err))
    raise RopebenchError(errors[0] if errors else f"{name}={raw!r} has no valid type")


def _cast_dataclass(raw: Any, annotation: type, name: str) -> Any:
    if isinstance(raw, annotation):
        return raw
    if not isinstance(raw, Mapping):
        raise RopebenchError(f"{name} must be a mapping of settings, got {raw!r}")
    return parse_settings(annotation, raw, where=name)


def _cast_sequence(raw: Any, origin: type, args: tuple[Any, ...], name: str) -> Any:
    """A list or tuple, each item cast to its type: `tuple[T, ...]`, `tuple[A, B]` (exactly
    that many values) or `list[T]`."""
    items = _split_list(raw, name)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        kinds = [args[0]] * len(items)
    elif origin is tuple and args:
        if len(items) != len(args):
            raise RopebenchError(f"{name} takes {len(args)} values, got {len(items)}")
        kinds = list(args)
    else:
        kinds = [args[0] if args else Any] * len(items)
    cast = [_cast(item, kind, name) for item, kind in zip(items, kinds, strict=True)]
    return tuple(cast) if origin is tuple else cast


def _cast_bool(raw: Any, name: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in _TRUE + _FALSE:
        return raw.lower() in _TRUE
    raise RopebenchError(f"{name}={raw!r} is not a boolean; write true or false")


def _cast_int(raw: Any, name: str) -> int:
    """A whole number: an int, a float or text without a fractional part ("1e3" is 1000)."""
    if isinstance(raw, bool):
        raise RopebenchError(f"{name}={raw!r} is not a whole number")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and not raw.is_integer():
        raise RopebenchError(f"{name}={raw} is not a whole number; give an integer")
    if isinstance(raw, str):
        try:
            return int(raw)
        except ValueError:
            pass
    try:
        number = float(raw) if isinstance(raw, str | float) else math.nan
    except ValueError:
        number = math.nan
    if math.isfinite(number) and number.is_integer():
        return int(number)
    raise RopebenchError(f"{name}={raw!r} is not a whole number; give an integer")


def _cast_float(raw: Any, name: str) -> float:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            pass
    if isinstance(raw, bool):
        raise RopebenchError(f"{name}={raw!r} is not a number")
    raise RopebenchError(f"{name}={raw!r} is not a number; give e.g. {name.split('.')[-1]}=2.5")


def _cast_str(raw: Any, name: str) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    raise RopebenchError(f"{name}={raw!r} is not text")


# Scalar annotations and their casts; any other annotation (Any, a class) takes the value as given.
_SCALARS = {bool: _cast_bool, int: _cast_int, float: _cast_float, str: _cast_str}


def _split_list(raw: Any, name: str) -> list[Any]:
    if isinstance(raw, list | tuple):
        return list(raw)
    if isinstance(raw, str):
        # a comma-separated list, with or without brackets: "1,1.5,2" or "[1, 1.5, 2]"
        return [x.strip() for x in raw.strip("[]() ").split(",") if x.strip()]
    raise RopebenchError(f"{name} must be a list, got {raw!r}")

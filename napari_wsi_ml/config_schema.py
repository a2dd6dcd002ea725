"""Config validation shared by every YAML config: checks, problem collection, dataclass schemas.

Every problem is collected and reported together (one :class:`ConfigError`), each line reading
``file: key: what is wrong; write what instead.``; an unknown key reads
``file: section.lerning_rate: unknown key 'lerning_rate' — did you mean 'learning_rate'?``.

Two ways to describe a section:

- a dict of :class:`Key` (a check function, a hint and a default), checked by
  :meth:`Problems.check_section` (used by the extraction config);
- a frozen dataclass, checked by :func:`check_dataclass`: field types give the checks
  (``bool``, ``int``, ``float`` (numeric text such as ``1e-3`` accepted), ``str``, ``Path``
  (resolved against the config's folder), ``Literal[...]``, ``X | None``, ``tuple[T, ...]`` /
  ``list[T]``, ``dict[str, T]``, nested dataclasses); :func:`spec` in ``field(metadata=...)``
  adds bounds and the hint. A field without default is required.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from napari_wsi_ml.errors import ConfigError

Check = Callable[[Any], str | None]  # returns what is wrong, or None


@dataclass(frozen=True)
class Key:
    """One config key: its check, default and the hint shown when it is wrong."""

    check: Check
    hint: str
    default: Any = None
    only_for: tuple[str, ...] = ()  # sampling keys that apply to some strategies only


def number(kind: type, lo: float | None = None, hi: float | None = None, open_lo: bool = False):
    """Check: an int (``kind=int``) or a number within ``[lo, hi]`` (``(lo, hi]`` if open_lo)."""

    def check(value: Any) -> str | None:
        ok_type = (int,) if kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_type):
            return f"must be {'an integer' if kind is int else 'a number'}, got {value!r}"
        if not math.isfinite(value):
            return f"must be finite, got {value!r}"
        if lo is not None and (value <= lo if open_lo else value < lo):
            return f"must be {'>' if open_lo else '≥'} {lo:g}, got {value!r}"
        if hi is not None and value > hi:
            return f"must be ≤ {hi:g}, got {value!r}"
        return None

    return check


def boolean(value: Any) -> str | None:
    """Check: true or false."""
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def text(value: Any) -> str | None:
    """Check: a non-empty string."""
    return None if isinstance(value, str) and value else f"must be a non-empty text, got {value!r}"


def choice(*choices: str) -> Check:
    """Check: one of ``choices`` (with the closest one suggested)."""

    def check(value: Any) -> str | None:
        if value in choices:
            return None
        close = difflib.get_close_matches(str(value), choices, n=1)
        maybe = f" (did you mean '{close[0]}'?)" if close else ""
        return f"must be one of {', '.join(choices)}, got {value!r}{maybe}"

    return check


def texts(choices: tuple[str, ...] | None = None) -> Check:
    """Check: a list of non-empty strings, optionally from ``choices``."""

    def check(value: Any) -> str | None:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            return f"must be a list of texts, got {value!r}"
        bad = [v for v in value if choices is not None and v not in choices]
        return f"unknown entries {bad}; known: {', '.join(choices or ())}" if bad else None

    return check


def text_map(value: Any) -> str | None:
    """Check: a non-empty mapping of text to text."""
    if not isinstance(value, dict) or not value:
        return f"must be a non-empty mapping of text to text, got {value!r}"
    bad = [k for k, v in value.items() if not (isinstance(k, str) and isinstance(v, str) and v)]
    return f"entries {bad} are not text: text" if bad else None


class Problems:
    """Collects the problems of one config file, then raises them together."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def add(self, key: str, wrong: str, fix: str) -> None:
        """Record ``source: key: wrong; write fix.``"""
        self.lines.append(f"{self.source}: {key}: {wrong}; write {fix}.")

    def unknown_key(self, prefix: str, name: Any, known: Iterable[str]) -> None:
        """Record an unknown key, with the closest known key when there is one."""
        known = list(known)
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
        if close:
            self.lines.append(
                f"{self.source}: {prefix}{name}: unknown key '{name}' — did you mean '{close[0]}'?"
            )
        else:
            self.add(f"{prefix}{name}", f"unknown key '{name}'", f"one of {', '.join(known)}")

    def raise_if_any(self, what: str) -> None:
        """Raise one ConfigError listing every problem (``what``: e.g. "the job config")."""
        if self.lines:
            count = len(self.lines)
            header = f"{self.source}: {count} problem{'s' * (count != 1)} in {what}:"
            raise ConfigError("\n".join([header, *self.lines]))

    def check_section(self, data: Any, keys: dict[str, Key], prefix: str) -> dict[str, Any]:
        """Checked values of a section, defaults filled in; problems recorded."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.add(
                prefix.rstrip(".") or "(top level)",
                f"must be a mapping, got {data!r}",
                "key: value lines",
            )
            return {name: key.default for name, key in keys.items()}
        out = {name: key.default for name, key in keys.items()}
        for name, value in data.items():
            if name not in keys:
                self.unknown_key(prefix, name, keys)
                continue
            wrong = keys[name].check(value) if value is not None else None
            if wrong:
                self.add(f"{prefix}{name}", wrong, keys[name].hint)
            else:
                out[name] = value if value is not None else keys[name].default
        return out


# -- dataclass schemas ---------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """Bounds and hint of a dataclass field (see :func:`spec`)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    hint: str | None = None
    help: str | None = None


def spec(
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    hint: str | None = None,
    help: str | None = None,
) -> dict[str, Spec]:
    """Field metadata: ``field(default=1e-3, metadata=spec(gt=0, hint="e.g. 0.001"))``."""
    return {"schema": Spec(ge=ge, gt=gt, le=le, hint=hint, help=help)}


def field_spec(item: dataclasses.Field) -> Spec:
    """The :class:`Spec` of a dataclass field (empty when none was given)."""
    return item.metadata.get("schema", Spec())


class _Invalid(Exception):
    """A value does not fit its type; the message says why."""


def _convert(value: Any, hint: Any, base: Path) -> Any:
    """``value`` converted to ``hint`` (a type annotation), or _Invalid."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(value, option, base)
            except _Invalid as error:
                errors.append(str(error))
        raise _Invalid(errors[0] if len(errors) == 1 else f"got {value!r}, expected {hint}")
    if origin is Literal:
        if value in args:
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
        maybe = f" (did you mean '{close[0]}'?)" if close else ""
        raise _Invalid(f"must be one of {', '.join(map(str, args))}, got {value!r}{maybe}")
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise _Invalid(f"must be a list, got {value!r}")
        item = args[0] if args else Any
        converted = [_convert(v, item, base) for v in value]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, dict):
            raise _Invalid(f"must be a mapping, got {value!r}")
        key_type, value_type = args or (Any, Any)
        return {
            _convert(k, key_type, base): _convert(v, value_type, base) for k, v in value.items()
        }
    if hint is bool:
        if not isinstance(value, bool):
            raise _Invalid(f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise _Invalid(f"must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise _Invalid(f"must be finite, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str) or not value:
            raise _Invalid(f"must be a non-empty text, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str | os.PathLike) or not str(value):
            raise _Invalid(f"must be a path, got {value!r}")
        path = Path(os.path.expanduser(os.fspath(value)))
        return path if path.is_absolute() else (base / path).resolve()
    raise _Invalid(f"has an unsupported type {hint!r} in the schema")


def _bounds(value: Any, rule: Spec) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if rule.ge is not None and value < rule.ge:
        return f"must be ≥ {rule.ge:g}, got {value!r}"
    if rule.gt is not None and value <= rule.gt:
        return f"must be > {rule.gt:g}, got {value!r}"
    if rule.le is not None and value > rule.le:
        return f"must be ≤ {rule.le:g}, got {value!r}"
    return None


def _example(item: dataclasses.Field, hint: Any) -> str:
    rule = field_spec(item)
    if rule.hint:
        return rule.hint
    if typing.get_origin(hint) is Literal:
        return " or ".join(map(str, typing.get_args(hint)))
    return f"a value of type {getattr(hint, '__name__', hint)}"


def check_dataclass(
    problems: Problems, data: Any, schema: type, *, prefix: str, base: Path
) -> Any | None:
    """An instance of ``schema`` built from ``data``; None (problems recorded) when invalid."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.add(prefix.rstrip("."), f"must be a mapping, got {data!r}", "key: value lines")
        return None
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
    count = len(problems.lines)
    values: dict[str, Any] = {}
    for name in data:
        if name not in fields:
            problems.unknown_key(prefix, name, fields)
    for name, item in fields.items():
        hint = hints[name]
        required = (
            item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
        )
        if name not in data:
            if required:
                problems.add(f"{prefix}{name}", "missing", f"'{name}: {_example(item, hint)}'")
            continue
        if dataclasses.is_dataclass(hint):
            nested = check_dataclass(
                problems, data[name], hint, prefix=f"{prefix}{name}.", base=base
            )
            if nested is not None:
                values[name] = nested
            continue
        try:
            value = _convert(data[name], hint, base)
        except _Invalid as error:
            problems.add(f"{prefix}{name}", str(error), _example(item, hint))
            continue
        wrong = _bounds(value, field_spec(item))
        if wrong:
            problems.add(f"{prefix}{name}", wrong, _example(item, hint))
            continue
        values[name] = value
    if len(problems.lines) > count:
        return None
    return schema(**values)


def to_plain(value: Any) -> Any:
    """A dataclass (or nested containers of them) as YAML-safe plain data; paths as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def read_yaml(path: str | os.PathLike[str], *, kind: str) -> Any:
    """Parse the YAML file of a ``kind`` config (e.g. "job"), with actionable errors.

    Raises:
        ConfigError: The file cannot be read or is not valid YAML.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"Cannot read {kind} config {path}: {error.strerror or error}. Check the path."
        ) from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(
            f"{path}: not valid YAML ({error}). Fix the line shown, e.g. indent with spaces."
        ) from error

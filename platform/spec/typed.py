"""Strict conversion of parsed YAML into typed dataclasses.

Every mistake becomes a SpecError naming the file and the key path, in one sentence:
an unknown key, a value of the wrong type, or a value a dataclass's own checks reject.
"""
import dataclasses
import math
import types
import typing
from typing import Any, Literal


class SpecError(Exception):
    """A user's mistake in a spec file; the message is one sentence for the terminal."""


PREVIEW = 60  # characters of a value an error message echoes


def preview(value: Any) -> str:
    """`repr(value)`, cut to a short preview: a 50 MB string or a list of a million items
    is named by its start and size, never echoed whole into a message (or into memory)."""
    if isinstance(value, (list, tuple, dict, set)) and len(value) > 8:
        kind = type(value).__name__
        head = list(value.items())[:3] if isinstance(value, dict) else list(value)[:3]
        return f"{preview(head)[:-1]}, ...] (a {kind} of {len(value)} items)"
    if isinstance(value, str) and len(value) > PREVIEW:
        return f"{value[:PREVIEW]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= PREVIEW else f"{text[:PREVIEW]}... ({len(text)} characters)"


def _type_name(tp) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if tp in names:
        return names[tp]
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (list, tuple):
        return "a list"
    if typing.get_origin(tp) is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def did_you_mean(given: Any, options) -> str:
    """" (did you mean 'x'?)" for the option closest to a misspelt `given`, else ""."""
    import difflib
    if not isinstance(given, str):
        return ""
    options = [str(o) for o in options]
    close = difflib.get_close_matches(given, options, n=1, cutoff=0.6) or \
        [o for o in options if o.lower() == given.lower().replace("-", "_")]
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fail(where: str, problem: str) -> typing.NoReturn:
    raise SpecError(f"{where}: {problem}.")


def convert(value: Any, tp, where: str) -> Any:
    """Check `value` against the type `tp` and return it converted (dataclasses built)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        if len(options) == 2 and type(None) in options and value is not None:
            # X | None given a value: X's own error names the inner key (dataset.synthetic.tracks)
            return convert(value, next(o for o in options if o is not type(None)), where)
        for option in options:
            if option is type(None):
                continue
            try:
                return convert(value, option, where)
            except SpecError:
                pass
        _fail(where, f"expected {' or '.join(_type_name(o) for o in options if o is not type(None))}, got {preview(value)}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            _fail(where, f"expected {_type_name(tp)}, got {preview(value)}{did_you_mean(value, typing.get_args(tp))}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin is list:
        if not isinstance(value, list):
            _fail(where, f"expected a list, got {preview(value)}")
        (item,) = typing.get_args(tp)
        return [convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            _fail(where, f"expected a mapping, got {preview(value)}")
        _, item = typing.get_args(tp)
        return {str(k): convert(v, item, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not (abs(value) < 1e308 if isinstance(value, int) else math.isfinite(value)):
            # .nan passes every range check (nan <= 0 is False); 10**400 is no float at all
            _fail(where, f"expected a finite number, got {preview(value)}")
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (str, bool) and isinstance(value, tp):
        return value
    if tp is Any:
        return value
    _fail(where, f"expected {_type_name(tp)}, got {preview(value)}")


def build(cls, data: Any, where: str):
    """Build dataclass `cls` from a mapping; fields left out keep their defaults."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        _fail(where, f"expected a mapping, got {preview(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        name = key if isinstance(key, str) and len(key) <= PREVIEW else preview(key)
        path = f"{where}.{name}" if where else name
        if key not in fields:
            _fail(path, f"unknown key{did_you_mean(key, fields)} (expected one of: {', '.join(fields)})")
        kwargs[key] = convert(value, hints[key], path)
    missing = [name for name, f in fields.items() if name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        _fail(where or "top level", f"missing required key {missing[0]!r}")
    try:
        return cls(**kwargs)
    except ValueError as error:  # the dataclass's own range checks
        _fail(where or "top level", str(error))

"""Typed nested dataclass options: load from YAML, apply ``--key=value`` overrides, dump back.

Generic machinery only (the recipes' option classes are in :mod:`vqcnir.training.config`). A dataclass
field may be another dataclass (a YAML section), ``bool``/``int``/``float``/``str``, ``X | None``, or a
``list``/``tuple`` of scalars. Unknown keys are rejected with the list of valid ones, values are
converted and checked against the field's type, and nothing is ever evaluated as code.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


class OptionsError(ValueError):
    """A bad option key or value; the message names the dotted key."""


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def valid_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the options class ``cls`` (e.g. ``train.optim_g.lr``)."""
    keys = []
    for name, tp in _hints(cls).items():
        if _is_dataclass_type(tp):
            keys.extend(valid_keys(tp, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def convert(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or a command line string) to the field type ``tp``; OptionsError if it cannot."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~")):
            if type(None) in args:
                return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return convert(value, arg, key)
            except OptionsError as error:
                errors.append(str(error))
        raise OptionsError(errors[0] if errors else f"option '{key}': cannot be {value!r}")
    if origin in (list, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip() else []
        if not isinstance(value, (list, tuple)):
            value = [value]
        item = args[0] if args else Any
        items = [convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value.replace("_", ""))
            except ValueError:
                number = None
            if number is not None and number.is_integer():
                return int(number)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "1e-4" as a string; accept it here
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise OptionsError(f"option '{key}' must be {_type_name(tp)}, got {value!r}")


def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build ``cls`` from a nested dict; missing keys keep their defaults, unknown keys raise OptionsError."""
    data = data or {}
    if not isinstance(data, dict):
        raise OptionsError(f"option '{prefix.rstrip('.') or '<root>'}' must be a mapping, got {data!r}")
    hints = _hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        where = f" in section '{prefix.rstrip('.')}'" if prefix else ""
        raise OptionsError(
            f"unknown option(s) {', '.join(prefix + k for k in unknown)}{where}; valid keys: "
            + ", ".join(valid_keys(cls, prefix))
        )
    values = {}
    for name, tp in hints.items():
        if name not in data:
            continue
        if _is_dataclass_type(tp):
            values[name] = from_dict(tp, data[name], f"{prefix}{name}.")
        else:
            values[name] = convert(data[name], tp, prefix + name)
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise OptionsError(f"invalid options{f' in {prefix.rstrip(chr(46))}' if prefix else ''}: {error}") from error


def to_dict(options: Any) -> dict[str, Any]:
    """Nested plain dict (tuples as lists), ready for YAML/JSON and ``torch.save(weights_only)``."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(options)


def apply_overrides(options: T, overrides: list[str]) -> T:
    """Return a copy of ``options`` with ``key=value`` strings applied (dotted keys, typed by the fields).

    Example:
        >>> apply_overrides(cfg, ["train.optim_g.lr=2e-4", "datasets.train.gt_size=128"])  # doctest: +SKIP
    """
    data = to_dict(options)
    keys = valid_keys(type(options))
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep:
            raise OptionsError(f"override {item!r} must look like --key=value")
        if key not in keys:
            close = [k for k in keys if k.endswith("." + key)] or difflib.get_close_matches(key, keys, n=3)
            hint = f" (did you mean {', '.join(close[:5])}?)" if close else ""
            raise OptionsError(f"unknown option '{key}'{hint}; valid keys: {', '.join(keys)}")
        *parents, leaf = key.split(".")
        section, cls = data, type(options)
        for part in parents:
            section, cls = section[part], _hints(cls)[part]
        section[leaf] = convert(value, _hints(cls)[leaf], key)
    return from_dict(type(options), data)


def load_yaml(cls: type[T], path: str, overrides: list[str] = ()) -> T:
    """Read the options ``cls`` from a YAML file (``yaml.safe_load``), then apply ``overrides``.

    A missing file, a YAML syntax error (with its line and column) or a bad key or value raises
    :class:`OptionsError` naming the file.
    """
    try:
        with open(path, encoding="utf-8") as source:
            data = yaml.safe_load(source) or {}
    except OSError as error:
        raise OptionsError(f"cannot read the config file {path}: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise OptionsError(f"{path}: not valid YAML{at}: {problem}") from error
    try:
        options = from_dict(cls, data)
    except OptionsError as error:
        raise OptionsError(f"{path}: {error}") from error
    return apply_overrides(options, list(overrides))


def dump_yaml(options: Any) -> str:
    """The options as YAML text (section order kept), loadable with :func:`load_yaml`."""
    return yaml.safe_dump(to_dict(options), sort_keys=False, default_flow_style=False)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"total_iter": 5}}`` -> ``{"train.total_iter": 5}`` (lists and tuples are leaves)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def differences(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (old value, new value)}`` for every leaf that differs (a missing leaf is None)."""
    before, after = flatten(old), flatten(new)
    keys = sorted(before.keys() | after.keys())
    return {k: (before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)}

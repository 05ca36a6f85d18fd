"""Strict YAML configs: dataclass schemas, validation with key paths, dotted overrides.

Every config section of vtrack is described by a dataclass. :func:`from_dict` turns a plain
mapping (from YAML) into that dataclass and raises one ``ValueError``/``TypeError`` naming the
key path for the first problem found: an unknown key, a missing required key or a value of the
wrong type (``train.lr: expected float, got 'abc'``).

Supported field types: ``bool``, ``int``, ``float`` (ints are accepted and converted; so are
strings that parse as a float, because PyYAML reads ``1e-4`` without a dot as a string), ``str``,
``Any``, ``X | None``, ``Literal[...]``, ``list[X]``, ``tuple[X, ...]``, ``tuple[X, Y]``,
``dict[str, X]`` and nested dataclasses.

:func:`load_config` reads a YAML file and applies ``key=value`` overrides whose value is parsed
with ``yaml.safe_load`` (``train.lr=4e-4``, ``data.datasets=[{name: got10k, root: /d}]``).
"""
from __future__ import annotations

import copy
import json
import dataclasses
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, Union

import yaml

__all__ = [
    "from_dict",
    "to_dict",
    "load_yaml",
    "load_config",
    "apply_overrides",
    "parse_override",
    "set_by_path",
    "check_sections",
]

T = TypeVar("T")
_MISSING = dataclasses.MISSING


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _type_name(tp: Any) -> str:
    if tp is Any:
        return "any value"
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return f"a mapping ({tp.__name__})"
        return tp.__name__
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return f"list of {len(args)} values ({', '.join(_type_name(a) for a in args)})"
    if origin is dict:
        return f"mapping of {_type_name(args[1])}" if args else "mapping"
    return str(tp)


def _fail(path: str, tp: Any, value: Any) -> TypeError:
    return TypeError(f"{path or 'config'}: expected {_type_name(tp)}, got {value!r}")


def _convert_union(value: Any, tp: Any, args: tuple[Any, ...], path: str) -> Any:
    if value is None:
        if type(None) in args:
            return None
        raise _fail(path, tp, value)
    errors: list[Exception] = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return _convert(value, arg, path)
        except (TypeError, ValueError) as err:
            errors.append(err)
    non_none = [a for a in args if a is not type(None)]
    if len(non_none) == 1 and errors:
        raise errors[0]
    raise _fail(path, tp, value)


def _convert_container(value: Any, tp: Any, origin: Any, args: tuple[Any, ...], path: str) -> Any:
    """list[...], tuple[...] and dict[str, ...] annotations."""
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(path, tp, value)
        inner = args[1] if args else Any
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{path}: expected string keys, got {k!r}")
            out[k] = _convert(v, inner, _join(path, k))
        return out
    if not isinstance(value, (list, tuple)):
        raise _fail(path, tp, value)
    if origin is list:
        inner = args[0] if args else Any
        return [_convert(v, inner, _join(path, i)) for i, v in enumerate(value)]
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(v, args[0], _join(path, i)) for i, v in enumerate(value))
    if len(value) != len(args):
        raise ValueError(f"{path}: expected {_type_name(tp)}, got {len(value)} values: {value!r}")
    return tuple(_convert(v, a, _join(path, i)) for i, (v, a) in enumerate(zip(value, args)))


def _convert_float(value: Any, tp: Any, path: str) -> float:
    if isinstance(value, bool):
        raise _fail(path, tp, value)
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value)
        except ValueError:
            raise _fail(path, tp, value) from None
    else:
        raise _fail(path, tp, value)
    if math.isnan(out):
        raise ValueError(f"{path}: expected a number, got NaN")
    return out


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Validate/convert ``value`` against the annotation ``tp``."""
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, path)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return _convert_union(value, tp, args, path)
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        raise ValueError(f"{path}: expected one of {', '.join(repr(a) for a in args)}, got {value!r}")
    if origin in (list, tuple, dict):
        return _convert_container(value, tp, origin, args, path)
    if tp is float:
        return _convert_float(value, tp, path)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _fail(path, tp, value)
    if tp in (bool, str) or isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _fail(path, tp, value)
    raise TypeError(f"{path}: unsupported annotation {tp!r} in the config schema")


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass ``cls`` from the mapping ``data``, validating every key.

    Args:
        cls: a dataclass type (the schema).
        data: a mapping (``None`` means empty); nested dataclass fields take nested mappings.
        path: key path of ``data`` used in error messages (e.g. ``"train"``).

    Raises:
        ValueError: unknown key, missing required key or a value out of a ``Literal``.
        TypeError: a value of the wrong type.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"cls: expected a dataclass type, got {cls!r}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TypeError(f"{path or 'config'}: expected a mapping ({cls.__name__}), got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ValueError(
            f"{_join(path, str(unknown[0]))}: unknown key; known keys of {path or cls.__name__}: {sorted(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        key_path = _join(path, name)
        if name not in data:
            if f.default is _MISSING and f.default_factory is _MISSING:
                raise ValueError(f"{key_path}: missing required key")
            continue
        kwargs[name] = _convert(data[name], hints[name], key_path)
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as err:
        msg = str(err)
        head = msg.split(":", 1)[0].split("/", 1)[0].split("[", 1)[0]
        if path and head in fields:
            msg = f"{path}.{msg}"
        elif path and not msg.startswith(path):
            msg = f"{path}: {msg}"
        raise type(err)(msg) from None
    return obj


def as_config(cls: type[T], value: Any, path: str) -> T:
    """``value`` as dataclass ``cls``: None gives the defaults, a mapping is validated with
    :func:`from_dict` (errors name ``path``), an instance passes through; anything else is a TypeError."""
    if value is None:
        return cls()
    if isinstance(value, Mapping):
        return from_dict(cls, dict(value), path)
    if not isinstance(value, cls):
        raise TypeError(f"cfg: expected {cls.__name__} or a mapping, got {type(value).__name__}")
    return value


def to_dict(obj: Any) -> Any:
    """Plain-Python (YAML/JSON/torch-checkpoint safe) copy of a dataclass tree or config mapping:
    tuples become lists and paths strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load``; errors name the file. A relative
    ``configs/...`` path that does not exist here names the packaged config (:mod:`vtrack.configs`)."""
    from vtrack.configs import resolve_config

    p = resolve_config(path)
    if not p.is_file():
        raise FileNotFoundError(f"config: no such file: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"config: {p} is not valid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"config: {p} must hold a mapping at the top level, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"a.b.c=value"`` into the key path and the value parsed by ``yaml.safe_load``."""
    if not isinstance(text, str):
        raise TypeError(f"override: expected a 'key=value' string, got {text!r}")
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"override: expected 'key=value' (e.g. train.lr=1e-4), got {text!r}")
    if any(not part for part in key.split(".")):
        raise ValueError(f"override: empty key component in {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ValueError(f"override {key}: value {raw!r} is not valid YAML: {err}") from None
    return key, value


def set_by_path(cfg: dict[str, Any], key: str, value: Any) -> None:
    """Set ``cfg[a][b][c] = value`` for ``key = "a.b.c"``, creating mappings as needed.

    A numeric component indexes into a list (``data.datasets.0.root=/x``).
    """
    parts = key.split(".")
    node: Any = cfg
    for i, part in enumerate(parts[:-1]):
        here = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ValueError(f"override {key}: {here} is not a valid index into a list of {len(node)}")
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ValueError(f"override {key}: {'.'.join(parts[:i]) or 'config'} is not a mapping")
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        elif not isinstance(nxt, (dict, list)):
            raise ValueError(f"override {key}: {here} holds {nxt!r}, not a mapping")
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ValueError(f"override {key}: {last!r} is not a valid index into a list of {len(node)}")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ValueError(f"override {key}: parent is not a mapping")


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``over`` merged in: nested mappings merge key by key, any
    other value of ``over`` replaces the base's."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def get_by_path(cfg: Any, key: str, default: Any = None) -> Any:
    """``cfg[a][b][c]`` for ``key = "a.b.c"`` (a numeric component indexes a list); ``default``
    when a component is missing."""
    node = cfg
    for part in key.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return default
    return node


def override_strings(overrides: Mapping[str, Any]) -> list[str]:
    """``{"a.b": False}`` -> ``["a.b=false"]``: a family's variant as command-line overrides
    (values written as JSON, which :func:`parse_override` reads back unchanged)."""
    if not isinstance(overrides, Mapping):
        raise TypeError(f"overrides: expected a mapping 'key.path' -> value, got {type(overrides).__name__}")
    return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]


def apply_overrides(cfg: dict[str, Any], overrides: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """Return a deep copy of ``cfg`` with the ``key=value`` overrides applied in order."""
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg: expected a mapping, got {type(cfg).__name__}")
    out = copy.deepcopy(cfg)
    for text in overrides or ():
        key, value = parse_override(text)
        set_by_path(out, key, value)
    return out


def load_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read a YAML config and apply ``key=value`` overrides (values parsed by ``yaml.safe_load``).

    Sections are validated later against their schema by the code that uses them; this only
    checks that the file is a mapping and the overrides are well formed.
    """
    return apply_overrides(load_yaml(path), overrides)


def check_sections(cfg: Any, allowed: tuple[str, ...] = ("model", "data", "train", "tracker")) -> dict[str, Any]:
    """Check the top-level sections of a config; an unknown section is a ``ValueError``."""
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg: expected a mapping with sections {list(allowed)}, got {type(cfg).__name__}")
    for key, value in cfg.items():
        if key not in allowed:
            raise ValueError(f"{key}: unknown config section; expected one of {list(allowed)}")
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{key}: expected a mapping, got {value!r}")
    return cfg

"""Strict YAML -> frozen dataclass loading.

Configuration lives in ``conf/base/*.yaml``; an environment overlay (``conf/<env>/*.yaml``) is deep-merged on
top, then ``--set a.b=c`` overrides. Every file's top-level keys are section names of :class:`AppConfig`.
Unknown keys and values of the wrong type are errors naming the key and the file they came from.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

T = TypeVar("T")

ENV_CONF_DIR = "RECSYS_CONF_DIR"
ENVIRONMENTS = ("local", "test", "cluster")


class ConfigError(ValueError):
    """A configuration file or override is invalid (unknown key, wrong type, unreadable file)."""


def default_conf_dir() -> Path:
    """``$RECSYS_CONF_DIR``, else the ``conf/`` next to the package source tree, else ``./conf``."""
    if os.environ.get(ENV_CONF_DIR):
        return Path(os.environ[ENV_CONF_DIR])
    beside_package = Path(__file__).resolve().parents[2] / "conf"
    return beside_package if beside_package.is_dir() else Path("conf")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of section names, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], top: Mapping[str, Any], origin: dict[str, str], source: str,
           prefix: str = "") -> None:
    """Deep-merge ``top`` into ``base`` in place, remembering which file set each dotted key."""
    for key, value in top.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value, origin, source, dotted + ".")
        else:
            base[key] = dict(value) if isinstance(value, Mapping) else value
            origin[dotted] = source
            if isinstance(value, Mapping):
                for sub in _dotted_keys(value, dotted + "."):
                    origin[sub] = source


def _dotted_keys(mapping: Mapping[str, Any], prefix: str) -> Iterable[str]:
    for key, value in mapping.items():
        yield f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _dotted_keys(value, f"{prefix}{key}.")


def _source_of(dotted: str, origin: Mapping[str, str]) -> str:
    while dotted:
        if dotted in origin:
            return origin[dotted]
        dotted = dotted.rpartition(".")[0]
    return "<defaults>"


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``a.b=c`` override; the value is read as YAML (``5`` is an int, ``[1, 2]`` a list)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.epochs=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _apply_override(tree: dict[str, Any], key: str, value: Any, origin: dict[str, str]) -> None:
    parts = key.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value
    origin[key] = f"--set {key}"


def _coerce(value: Any, tp: Any, key: str, origin: Mapping[str, str]) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert containers (list -> tuple, dict -> dataclass)."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(
            f"{_source_of(key, origin)}: key {key!r} must be {expected}, got {value!r} ({type(value).__name__})"
        )

    if tp is Any:
        return value
    origin_tp = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin_tp in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, origin)
            except ConfigError as exc:
                errors.append(str(exc))
        raise fail(" or ".join(str(a) for a in args)) from None
    if origin_tp is Literal:
        if value not in args:
            raise fail("one of " + ", ".join(repr(a) for a in args))
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise fail(f"a mapping (section {tp.__name__})")
        return _build(tp, value, key + ".", origin)
    if origin_tp is tuple:
        if not isinstance(value, (list, tuple)):
            raise fail("a list")
        item_tp = args[0] if args else Any
        return tuple(_coerce(v, item_tp, f"{key}[{i}]", origin) for i, v in enumerate(value))
    if origin_tp in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise fail("a mapping")
        k_tp, v_tp = args if args else (Any, Any)
        return types.MappingProxyType(
            {_coerce(k, k_tp, key, origin): _coerce(v, v_tp, f"{key}.{k}", origin) for k, v in value.items()}
        )
    if tp is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        return float(value)
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. spark.conf values such as 200 or 0.6
        if not isinstance(value, str):
            raise fail("a string")
        return value
    raise ConfigError(f"key {key!r}: unsupported annotation {tp!r} in the config schema")


def _build(cls: type[T], data: Mapping[str, Any], prefix: str, origin: Mapping[str, str]) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        first = prefix + unknown[0]
        raise ConfigError(
            f"{_source_of(first, origin)}: unknown key {first!r}"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            + f"; valid keys under {prefix.rstrip('.') or 'top level'!r}: {', '.join(sorted(fields))}"
        )
    kwargs = {name: _coerce(value, hints[name], prefix + name, origin) for name, value in data.items()}
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing required key(s) {', '.join(prefix + m for m in missing)}")
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as exc:  # a section's own checks (__post_init__): a configuration error too
        raise ConfigError(f"section {prefix.rstrip('.') or 'top level'!r}: {exc}") from exc


def load_tree(conf_dir: Path, env: str | None, overrides: Iterable[str] = ()) -> tuple[dict[str, Any],
                                                                                        dict[str, str]]:
    """Merge ``base`` + overlay + overrides into one nested dict; also return key -> source file."""
    base_dir = conf_dir / "base"
    if not base_dir.is_dir():
        raise ConfigError(f"configuration directory {base_dir} not found (set --conf-dir or ${ENV_CONF_DIR})")
    tree: dict[str, Any] = {}
    origin: dict[str, str] = {}
    dirs = [base_dir]
    if env:
        overlay = conf_dir / env
        if not overlay.is_dir():
            raise ConfigError(f"unknown environment {env!r}: {overlay} does not exist")
        dirs.append(overlay)
    for directory in dirs:
        for path in sorted(directory.glob("*.yaml")):
            _merge(tree, _read_yaml(path), origin, str(path))
    for text in overrides:
        key, value = parse_override(text)
        _apply_override(tree, key, value, origin)
    return tree, origin


def build_config(cls: type[T], tree: Mapping[str, Any], origin: Mapping[str, str]) -> T:
    """Validate a merged tree into the dataclass ``cls``."""
    return _build(cls, tree, "", origin)


def to_dict(config: Any) -> Any:
    """Plain ``dict``/``list`` form of a config (for logging and saving with a model)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, Mapping):
        return {k: to_dict(v) for k, v in config.items()}
    if isinstance(config, tuple):
        return [to_dict(v) for v in config]
    return config

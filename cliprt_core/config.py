"""
One typed configuration system for training, evaluation, models and nodes.

Configs are (nested, frozen) dataclasses. They load from YAML or dicts, reject unknown and
duplicate keys with the full dotted path of the offending key, and accept ``key.sub=value``
command-line overrides whose values are parsed as YAML scalars (``lr=1e-4``, ``train.amp=false``,
``tasks=[0,1]``).

Each setting is defined once, with :func:`setting` (default + help text). Everything else is
derived from that definition: command-line flags (:mod:`cliprt_core.cli.options`), ROS node
parameters (``cliprt_ros.parameters``) and launch arguments (``cliprt_ros.launch_support``), all
through :func:`leaves`, which flattens nested groups into their scalar settings.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
import types
import typing
from typing import Any, Mapping, Sequence, TypeVar

import yaml

T = TypeVar('T')


class ConfigError(ValueError):
    """A configuration file or override is invalid (unknown key, wrong type, bad value)."""


def setting(default: Any = dataclasses.MISSING, description: str = '') -> Any:
    """
    Declare a config field with its help text (for CLI flags, node parameters, launch args).

    Mutable defaults (lists, dicts) are copied per instance.
    """
    metadata = {'description': description}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One scalar setting of a config class, as flags, parameters and launch arguments see it."""

    name: str  # the flat name: CLI flag (--name), ROS parameter and launch argument
    path: tuple[str, ...]  # where it lives in the nested config
    annotation: Any  # the field's type
    default: Any
    description: str  # the help text

    @property
    def base_type(self) -> Any:
        """Return the type without ``None`` (``int | None`` -> ``int``)."""
        args = [a for a in typing.get_args(self.annotation) if a is not type(None)]
        union = typing.get_origin(self.annotation) in (typing.Union, types.UnionType)
        if union and len(args) == 1:
            return args[0]
        return self.annotation

    @property
    def optional(self) -> bool:
        return type(None) in typing.get_args(self.annotation)

    def parse(self, text: str) -> Any:
        """Parse ``text`` (a launch argument or flag) into this setting's type (or ConfigError)."""
        base = self.base_type
        value: Any = text
        if not (base is str or self.choices or str in typing.get_args(base)):
            try:
                value = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ConfigError(f'{self.name}: cannot parse {text!r}: {exc}') from None
        return _coerce(self.annotation, value, self.name)

    @property
    def choices(self) -> tuple[Any, ...] | None:
        base = self.base_type
        return typing.get_args(base) if typing.get_origin(base) is typing.Literal else None


def leaves(cls: type, exclude: Sequence[str] = ()) -> dict[str, Leaf]:
    """
    Every scalar setting of config class ``cls`` by flat name; nested groups are flattened.

    Two settings with the same flat name are a definition error. ``exclude`` drops names.
    """
    found: dict[str, Leaf] = {}
    for leaf in _walk(cls, ()):
        if leaf.name in found:
            raise TypeError(f"{cls.__name__}: settings {'.'.join(found[leaf.name].path)} and "
                            f"{'.'.join(leaf.path)} share the flat name {leaf.name!r}")
        if leaf.name not in exclude:
            found[leaf.name] = leaf
    return found


def _walk(cls: type, prefix: tuple[str, ...]):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _walk(tp, prefix + (f.name,))
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        yield Leaf(f.name, prefix + (f.name,), tp, default, f.metadata.get('description', ''))


def nest(values: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """Flat ``{leaf name: value}`` -> the nested dict ``from_dict(cls, ...)`` takes."""
    found = leaves(cls)
    data: dict[str, Any] = {}
    for name, value in values.items():
        if name not in found:
            raise ConfigError(f"unknown setting {name!r}; valid: {', '.join(sorted(found))}")
        node = data
        *sections, last = found[name].path
        for section in sections:
            node = node.setdefault(section, {})
        node[last] = value
    return data


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge of nested dicts (``update`` wins)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, path: str = '') -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f'{path or cls.__name__}: expected a mapping, got {type(data).__name__}')
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f" in '{path}'" if path else ''
        raise ConfigError(
            f"unknown config key(s){where}: {', '.join(_join(path, k) for k in unknown)}; "
            f"valid keys for {cls.__name__}: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(hints[name], value, _join(path, name)) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required fields
        raise ConfigError(f'{path or cls.__name__}: {exc}') from exc


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-dict (YAML/JSON serialisable) form of a config dataclass."""
    return _plain(dataclasses.asdict(config))


def load_config(cls: type[T], source: str | Path | Mapping[str, Any] | None = None,
                overrides: Sequence[str] = ()) -> T:
    """Load ``cls`` from a YAML file or mapping, then apply ``key.sub=value`` overrides."""
    if source is None:
        data: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f'config file not found: {path}')
        data = read_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f'{path}: top level must be a mapping')
    for override in overrides:
        apply_override(data, override)
    if isinstance(source, (str, Path)):
        try:
            return from_dict(cls, data)
        except ConfigError as exc:
            raise ConfigError(f'{source}: {exc}') from exc
    return from_dict(cls, data)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys (YAML would silently keep the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f'duplicate key {key!r} (line {seen[key] + 1} and line '
                                  f'{key_node.start_mark.line + 1})')
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely; invalid YAML and duplicate keys raise ConfigError naming it."""
    path = Path(path)
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except ConfigError as exc:
        raise ConfigError(f'{path}: {exc}') from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f'{path}: invalid YAML: {exc}') from None
    except OSError as exc:
        raise ConfigError(f'{path}: cannot read: {exc.strerror or exc}') from None


def save_config(config: Any, path: str | Path) -> None:
    """Write a config as YAML (used for the resolved config of a run)."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply one ``dotted.key=value`` override to a nested dict in place."""
    key, sep, raw = override.partition('=')
    if not sep or not key.strip():
        raise ConfigError(f'override must look like key=value, got {override!r}')
    try:
        value = yaml.safe_load(raw) if raw.strip() else ''
    except yaml.YAMLError as exc:
        raise ConfigError(f'override {override!r}: invalid value: {exc}') from exc
    parts = key.strip().split('.')
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {override!r}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def _join(path: str, key: str) -> str:
    return f'{path}.{key}' if path else str(key)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, path)
            except ConfigError as exc:
                errors.append(str(exc))
                if isinstance(value, Mapping) and dataclasses.is_dataclass(arg):
                    raise  # a mapping meant for this config class: its own error is the one
        if len(errors) == 1:
            raise ConfigError(errors[0])
        raise ConfigError(f'{path}: {value!r} matches none of {tp}')
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path=path)
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{path}: expected a list, got {value!r}')
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f'{path}: expected {len(args)} items, got {len(value)}')
            return tuple(_coerce(a, v, f'{path}[{i}]')
                         for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_coerce(item, v, f'{path}[{i}]') for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f'{path}: expected a mapping, got {value!r}')
        vt = args[1] if args else Any
        return {k: _coerce(vt, v, f'{path}.{k}') for k, v in value.items()}
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{path}: expected a number, got {value!r}')
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'{path}: expected an integer, got {value!r}')
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'{path}: expected true/false, got {value!r}')
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f'{path}: expected a string, got {value!r}')
        return value
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def parse_index_ranges(text: str, what: str, limit: int | None = None) -> list[int]:
    """
    ``"all"`` / ``"0-9"`` / ``"0,3,5-7"`` -> sorted unique ints (task ids, init states, demos).

    With ``limit``, values must lie in ``0..limit-1`` (``all`` needs it). Raises ConfigError
    naming ``what`` (the setting or flag) on anything else.
    """
    text = str(text).strip()
    if text in ('all', '*'):
        if limit is None:
            raise ConfigError(f"{what}: 'all' has no meaning here; give ids like '0-9'")
        return list(range(limit))
    values: list[int] = []
    for part in text.split(','):
        part = part.strip()
        try:
            first, dash, last = part.partition('-')
            low = int(first)
            high = int(last) if dash else low
            if high < low:
                raise ValueError
        except ValueError:
            raise ConfigError(f"{what}: cannot parse {part!r} in {text!r} (use 'all', '0-9' or "
                              "'0,3,5-7')") from None
        values.extend(range(low, high + 1))
    bad = [v for v in values if limit is not None and not 0 <= v < limit]
    if bad:
        raise ConfigError(f'{what}: {bad[0]} out of range (0..{limit - 1})')
    return sorted(dict.fromkeys(values))

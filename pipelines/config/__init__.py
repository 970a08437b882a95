"""Configuration: the recipe (`recipe`, with the source and teacher options in
`source_config` and `teacher_config`), built by this module's strict conversion of plain
YAML data into typed dataclasses.

`build(cls, data)` walks the dataclass's fields and type hints: unknown keys, missing
required keys, wrong types and numbers out of their bounds (`PositiveInt`, `Share`, ...:
`Annotated` types carrying a `Bounds`) fail with a `ConfigError` naming the dotted key, e.g.
"teacher.oracle.error_rate: expected a number, got 'high'". YAML is read with a budget on
the values its aliases expand to, so a small file cannot blow up into gigabytes.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Annotated, Any, Literal, Union

import yaml


class ConfigError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Bounds:
    """Inclusive bounds of a number in a config (None: open)."""

    low: float | None = None
    high: float | None = None

    def check(self, value: float, path: str) -> None:
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            if self.high is None:
                raise ConfigError(f"{_where(path)}: must be >= {self.low:g}, got {value}")
            if self.low is None:
                raise ConfigError(f"{_where(path)}: must be <= {self.high:g}, got {value}")
            raise ConfigError(f"{_where(path)}: must lie in [{self.low:g}, {self.high:g}], got {value}")


PositiveInt = Annotated[int, Bounds(1)]  # a count of things that must exist: batch sizes, rows per shard
NonNegativeInt = Annotated[int, Bounds(0)]
Share = Annotated[float, Bounds(0, 1)]
MAX_VALUES = 100_000  # values a YAML document may expand to, aliases included


def safe_load(text: str, where: str) -> Any:
    """YAML as plain data; refuses documents whose aliases expand past MAX_VALUES values
    (a few hundred bytes of nested aliases can stand for billions)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML: {e}") from None
    budget = [MAX_VALUES]

    def walk(node: Any) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigError(f"{where}: expands to more than {MAX_VALUES} values (nested YAML aliases?)")
        if isinstance(node, dict):
            for k, v in node.items():
                walk(k)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(data)
    return data


def build(cls: type, data: Any, path: str = "") -> Any:
    return _convert(cls, data, path)


def build_with_overrides(cls: type, data: dict, overrides=(), where: str = "") -> Any:
    """`build` after applying `key=value` overrides to a copy of `data`; errors name `where`."""
    import copy

    data = copy.deepcopy(data)
    switches = _switches(cls)
    fill = getattr(cls, "fill_defaults", None)
    for assignment in overrides:
        top = assignment.split("=", 1)[0].strip().split(".")[0]
        if fill is not None and "." in assignment.split("=", 1)[0] and data.get(top) is None:
            data[top] = fill(data).get(top)  # a default list addressed by its items' names: made explicit first
            if data[top] is None:
                del data[top]
        apply_override(data, assignment)
        _drop_switched_blocks(switches, data, assignment.split("=", 1)[0].strip())
    try:
        return build(cls, data)
    except ConfigError as e:
        raise ConfigError("\n".join(f"{where}: {line}" for line in str(e).splitlines()) if where else str(e)) from None


def load_yaml(cls: type, path, overrides=()) -> Any:
    """A YAML file as `cls`, with overrides."""
    from pathlib import Path

    try:
        data = safe_load(Path(path).read_text(), str(path)) or {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, got {type(data).__name__}")
    return build_with_overrides(cls, data, overrides, str(path))


def _where(path: str) -> str:
    return path or "<recipe>"


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        converted = _convert(args[0], value, path)
        for bound in tp.__metadata__:
            if isinstance(bound, Bounds):
                bound.check(converted, path)
        return converted
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(option, value, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{_where(path)}: {value!r} fits none of {options}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{_where(path)}: expected one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_where(path)}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_convert(item, v, f"{path}.{i}") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{_where(path)}: expected a mapping, got {value!r}")
        vt = args[1] if args else Any
        return {str(k): _convert(vt, v, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{_where(path)}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{_where(path)}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{_where(path)}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{_where(path)}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")


def _dataclass(cls: type, value: Any, path: str) -> Any:
    """Every problem of the mapping is reported at once, one line each, its key named."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{_where(path)}: expected a mapping, got {value!r}")
    fill = getattr(cls, "fill_defaults", None)  # a class whose parts default differently: it says how
    if fill is not None:
        value = fill(value)
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    problems = []
    for key in value:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(fields)})"
            problems.append(f"{_join(path, key)}: unknown key{hint}")
    try:
        _check_switch(cls, value, path)
    except ConfigError as e:
        problems.append(str(e))
    kwargs = {}
    for name, f in fields.items():
        sub = _join(path, name)
        if name in value:
            try:
                kwargs[name] = _convert(hints[name], value[name], sub)
            except ConfigError as e:
                problems.append(str(e))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            problems.append(f"{sub}: required key is missing")
    if problems:
        raise ConfigError("\n".join(dict.fromkeys(problems)))
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{_where(path)}: {e}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{_where(path)}: {e}") from None


def switched_off(obj: Any) -> set[str]:
    """The blocks of a switched dataclass that its switch does not select.

    A dataclass with `SWITCH = ("kind", ("hf", "llava", ...))` holds one settings block per
    choice of its field `kind`; only the chosen one is used, the others are left out of
    `to_plain` and refused when a recipe sets them."""
    switch = getattr(type(obj), "SWITCH", None)
    if not switch:
        return set()
    chosen = getattr(obj, switch[0])
    return {b for b in switch[1] if b != chosen}


def _check_switch(cls: type, value: dict, path: str) -> None:
    switch = getattr(cls, "SWITCH", None)
    if not switch:
        return
    key, blocks = switch
    chosen = value.get(key, next(f.default for f in dataclasses.fields(cls) if f.name == key))
    for block in blocks:
        if block in value and block != chosen:
            raise ConfigError(f"{_join(path, block)}: {block} settings, but {_join(path, key)} is {chosen!r}; "
                              f"they apply only when {key} is {block!r} (remove them, or set {key}: {block})")


def _switches(tp: Any, seen: set | None = None) -> dict[str, tuple[str, ...]]:
    """Every switch key in a dataclass tree -> the blocks it chooses among."""
    seen = set() if seen is None else seen
    found: dict[str, tuple[str, ...]] = {}
    if dataclasses.is_dataclass(tp) and tp not in seen:
        seen.add(tp)
        if getattr(tp, "SWITCH", None):
            found[tp.SWITCH[0]] = tp.SWITCH[1]
        for hint in typing.get_type_hints(tp).values():
            found.update(_switches(hint, seen))
    for arg in typing.get_args(tp):
        found.update(_switches(arg, seen))
    return found


def _drop_switched_blocks(switches: dict, data: dict, key: str) -> None:
    """After an override of `key`: if it switched a kind or backend (`teacher.backend=vllm` on
    a recipe written for the oracle), the settings given so far for the other kinds are
    unused and are dropped, not refused; blocks set by later overrides are still checked."""
    *parent, last = key.split(".")
    if last not in switches:
        return
    node: Any = data
    for part in parent:
        node = _step(node, part, key, create=False) if isinstance(node, (dict, list)) else None
    if isinstance(node, dict):
        for block in switches[last]:
            if block != node.get(last):
                node.pop(block, None)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def apply_override(data: dict, assignment: str) -> None:
    """Apply one `key.sub=value` to raw recipe data in place; the value is parsed as YAML
    (so `3`, `0.5`, `true`, `[a, b]` get their types). List items are addressed by index."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r}: expected key.sub=value")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {assignment!r}: empty key segment")
    if not raw.strip():
        raise ConfigError(f"override {assignment!r}: no value after '=' (write {key.strip()}=null to clear a value)")
    value = safe_load(raw, f"override {key}")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        node = _step(node, part, ".".join(parts[: i + 1]), create=True)
        if parts[0] == "filters" and i == 1 and isinstance(node, dict) and parts[2] not in ("name", "params"):
            node = node.setdefault("params", {})  # filters.answer_correct.min_vqa_accuracy: a param of the filter
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, key)] = value
    else:
        node[last] = value


def _step(node: Any, part: str, where: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, where)]
    if not isinstance(node, dict):
        raise ConfigError(f"override {where}: {node!r} has no keys")
    if node.get(part) is None and create:
        node[part] = {}
    return node[part]


def _index(node: list, part: str, where: str) -> int:
    """A list item by its index, or by its `name` (`sources.mine`, `filters.answer_correct`)."""
    named = [i for i, item in enumerate(node) if isinstance(item, dict) and item.get("name") == part]
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise ConfigError(f"override {where}: {len(named)} items are named {part!r}; address one by its index")
    try:
        i = int(part)
        node[i]
        return i
    except (ValueError, IndexError):
        names = [item["name"] for item in node if isinstance(item, dict) and isinstance(item.get("name"), str)]
        close = difflib.get_close_matches(part, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (names: {', '.join(names)})" if names else ""
        raise ConfigError(f"override {where}: {part!r} is neither an index of the {len(node)}-item list nor a name in it{hint}") from None


def to_plain(obj: Any) -> Any:
    """A dataclass tree as plain dicts and lists, ready for YAML."""
    if dataclasses.is_dataclass(obj):
        off = switched_off(obj)
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name not in off}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj

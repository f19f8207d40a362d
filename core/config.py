"""Configuration primitives every section is built from: reading `config.toml`, typed values with
their problems collected (never raised one at a time), and the error that carries them all.

A section is a frozen dataclass. Each field is a :func:`setting`: its default, written once, and its
``help`` (the README's configuration table is generated from these). The section's ``problems()``
method checks its values, one line per problem naming the key. :func:`build_section` makes a section
from one TOML table: unknown keys, wrong types and the section's own problems are appended to a list
shared by the whole file, so every problem is reported at once; keys listed in the section's
``renamed_keys`` are accepted under their old name with a warning.

Each package owns its sections (`bot/config.py`, `models/spec.py`, `finetune/config.py`, the
`[zendesk]` table in `integrations/zendesk_config.py`); a command reads only the sections it needs.
"""

from __future__ import annotations

import functools
import logging
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, field, fields, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

CONFIG_ENV = "DRAFTDESK_CONFIG"

log = logging.getLogger(__name__)

T = TypeVar("T")


class ConfigError(Exception):
    """Raised with every problem found; `str()` gives one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class InvalidSettings(ValueError):
    """A section made in code (not read from the file) whose values break its bounds."""

    def __init__(self, owner: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{owner}: " + "; ".join(problems))


def setting(
    help: str,
    default: Any = MISSING,
    *,
    factory: Any = MISSING,
    key: str | None = None,
    parse: Callable[[Any], Any] | None = None,
    shown_default: str | None = None,
) -> Any:
    """A dataclass field with its ``help`` text (TRL/PEFT style): the docs are generated from it.

    Without ``default`` or ``factory`` the key is required. ``key`` is its name in the TOML table
    when that differs from the field's. ``parse`` turns the TOML value into the field's value (for
    types TOML lacks), raising ValueError with what to write instead. ``shown_default`` is what
    the docs say when the default is worked out at load time.
    """
    metadata: dict[str, Any] = {"help": help}
    if key is not None:
        metadata["key"] = key
    if parse is not None:
        metadata["parse"] = parse
    if shown_default is not None:
        metadata["shown_default"] = shown_default
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def toml_key(item: Field[Any]) -> str:
    """The name of a section's field in config.toml."""
    return str(item.metadata.get("key", item.name))


def is_required(item: Field[Any]) -> bool:
    return item.default is MISSING and item.default_factory is MISSING


def out_of_range(section: Any, bounds: Mapping[str, tuple[float, float]]) -> list[str]:
    """One problem line per field of ``section`` outside its inclusive (minimum, maximum); None is unset."""
    problems = []
    for name, (minimum, maximum) in bounds.items():
        value = getattr(section, name)
        if value is not None and not minimum <= value <= maximum:
            problems.append(f"{name}: must be between {minimum} and {maximum}, got {value!r}")
    return problems


def below_minimum(config: Any, minimums: Mapping[str, float]) -> list[str]:
    """One problem line per field of ``config`` that is below its minimum."""
    return [
        f"{name}: must be >= {minimum}, got {getattr(config, name)}"
        for name, minimum in minimums.items()
        if getattr(config, name) < minimum
    ]


def resolve_config_path(cli_path: str | None, env: Mapping[str, str]) -> Path:
    """`--config` wins, then `DRAFTDESK_CONFIG`, then `./config.toml`."""
    return Path(cli_path or env.get(CONFIG_ENV) or "config.toml")


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file, or a ConfigError that says what to do."""
    if not path.is_file():
        raise ConfigError(
            [
                f"config file {path.resolve()} not found: pass --config PATH or set {CONFIG_ENV} "
                "(see config.toml)"
            ]
        )
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path.resolve()}: not valid TOML: {exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{path.resolve()}: not UTF-8 (byte {exc.start + 1}): save it as UTF-8, as TOML requires"]
        ) from exc
    except PermissionError as exc:
        raise ConfigError(
            [f"{path.resolve()}: cannot be read ({exc.strerror}): let the user running draftdesk read it"]
        ) from exc


def local_or_hub(value: str, base_dir: Path) -> str:
    """Relative paths that look local are resolved against the config file's folder."""
    if value.startswith(("./", "../", "/", "~")):
        return str((base_dir / Path(value).expanduser()).resolve())
    return value


def parse_iso_datetime(value: Any) -> datetime | None:
    """A TOML date/datetime or an ISO string as an aware datetime (UTC if none given); None if not one."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional_of(kind: Any) -> Any:
    """``X`` for ``X | None``; None for any other type."""
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        others = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(others) == 1 and len(typing.get_args(kind)) == 2:
            return others[0]
    return None


def _accepts(kind: Any, value: Any) -> bool:
    """Whether a TOML value fits a field's type hint (choices are checked later, with the bounds)."""
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):
        return any(_accepts(arg, value) for arg in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if origin is Literal:
        return any(_accepts(type(choice), value) for choice in typing.get_args(kind))
    if origin in (list, tuple):
        item = typing.get_args(kind)[0]
        return isinstance(value, list | tuple) and all(_accepts(item, v) for v in value)
    if kind is bool:
        return isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is Path:
        return isinstance(value, str)
    return isinstance(kind, type) and isinstance(value, kind)


def _convert(kind: Any, value: Any) -> Any:
    """A TOML value that ``_accepts`` as the field's value: floats from integers, tuples from lists."""
    inner = _optional_of(kind)
    if inner is not None:
        if value is None or (value == "" and inner is str):
            return None  # an empty optional text means "not set"
        return _convert(inner, value)
    if kind is float:
        return float(value)
    if kind is Path:
        return Path(value)
    origin = typing.get_origin(kind)
    if origin is tuple:
        return tuple(value)
    if origin is list:
        return list(value)
    return value


def describe_type(kind: Any) -> str:
    """What a value of this type looks like in TOML, for a problem line."""
    inner = _optional_of(kind)
    if inner is not None:
        return describe_type(inner)
    origin = typing.get_origin(kind)
    if origin is Literal:
        return "one of " + ", ".join(f'"{choice}"' for choice in typing.get_args(kind))
    if origin in (list, tuple):
        return "a list of strings"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}
    return names.get(kind, str(kind))


def choice_problems(section: Any) -> list[str]:
    """One line per ``Literal`` field of ``section`` whose value is not one of its choices."""
    problems = []
    hints = _hints(type(section))
    for item in fields(section):
        kind = _optional_of(hints[item.name]) or hints[item.name]
        if typing.get_origin(kind) is not Literal:
            continue
        value = getattr(section, item.name)
        choices = typing.get_args(kind)
        if value is not None and value not in choices:
            listed = ", ".join(repr(choice) for choice in choices)
            problems.append(f"{toml_key(item)}: must be one of {listed}, got {value!r}")
    return problems


def section_problems(section: Any) -> list[str]:
    """Every problem of a built section: its choices, then its own ``problems()``."""
    checker = getattr(section, "problems", None)
    return choice_problems(section) + (list(checker()) if checker is not None else [])


def check_section(section: Any, owner: str) -> None:
    """For ``__post_init__`` of sections that code makes directly too: raise InvalidSettings."""
    problems = section_problems(section)
    if problems:
        raise InvalidSettings(owner, problems)


def read_section_values(
    cls: type, table: Mapping[str, Any], prefix: str, problems: list[str]
) -> dict[str, Any]:
    """The values of ``table`` as ``cls`` field values; unknown keys and wrong types become problems.

    A key that ``cls.renamed_keys`` maps to its new name is read as the new one, with a warning.
    """
    by_key = {toml_key(item): item for item in fields(cls)}
    renamed: Mapping[str, str] = getattr(cls, "renamed_keys", {})
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key in renamed:
            new_key = renamed[key]
            if new_key in table:
                problems.append(f"{prefix}.{key}: renamed to {new_key}, which is set too: remove {key}")
                continue
            log.warning("config: %s.%s is deprecated: rename it to %s", prefix, key, new_key)
            key = new_key
        item = by_key.get(key)
        if item is None:
            problems.append(f"{prefix}.{key}: unknown setting (known: {', '.join(sorted(by_key))})")
            continue
        parse = item.metadata.get("parse")
        if parse is not None:
            try:
                values[item.name] = parse(value)
            except ValueError as exc:
                problems.append(f"{prefix}.{key}: {exc}")
            continue
        kind = hints[item.name]
        if not _accepts(kind, value):
            problems.append(f"{prefix}.{key}: expected {describe_type(kind)}, got {value!r}")
            continue
        values[item.name] = _convert(kind, value)
    return values


def try_build_section(
    cls: type[T], table: Any, prefix: str, problems: list[str], base: T | None = None
) -> T | None:
    """``cls`` from one TOML table (over ``base`` when given), or None when its values cannot make one.

    Problems are appended to ``problems``, each naming its key as ``prefix.key``; never raised.
    """
    if table is None:
        table = {}
    if not isinstance(table, Mapping):
        problems.append(f"[{prefix}] must be a table")
        return None
    values = read_section_values(cls, table, prefix, problems)
    if base is None:
        missing = [item for item in fields(cls) if is_required(item) and item.name not in values]  # type: ignore[arg-type]
        for item in missing:
            problems.append(f"{prefix}.{toml_key(item)}: missing: {item.metadata.get('help', 'required')}")
        if missing:
            return None
    try:
        built = replace(base, **values) if base is not None else cls(**values)  # type: ignore[type-var]
    except InvalidSettings as exc:  # a section that checks itself on creation
        problems.extend(f"{prefix}.{line}" for line in exc.problems)
        return None
    problems.extend(f"{prefix}.{line}" for line in section_problems(built))
    return built


def build_section(cls: type[T], table: Any, prefix: str, problems: list[str], base: T | None = None) -> T:
    """Like :func:`try_build_section`; when the values cannot make one, ``base`` or the defaults.

    So the caller goes on to check the other sections, and raises one ConfigError at the end.
    """
    built = try_build_section(cls, table, prefix, problems, base)
    if built is not None:
        return built
    return base if base is not None else cls()

"""Configuration primitives every section is built from: reading `config.toml`, typed values with
their problems collected (never raised one at a time), and the error that carries them all.

Each package owns its sections (`bot/config.py`, `models/config.py`, `finetune/config.py`, the
`[zendesk]` table in `integrations/zendesk_config.py`); a command reads only the sections it needs.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

CONFIG_ENV = "DRAFTDESK_CONFIG"


class ConfigError(Exception):
    """Raised with every problem found; `str()` gives one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def setting(help: str, default: Any = MISSING, factory: Any = MISSING) -> Any:
    """A dataclass field with its ``help`` text (TRL/PEFT style): the docs are generated from it."""
    if factory is not MISSING:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


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
            [f"config file {path} not found: pass --config PATH or set {CONFIG_ENV} (see config.toml)"]
        )
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc


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


class TableReader:
    """Reads typed values from one TOML table, recording problems instead of raising."""

    def __init__(self, table: Any, prefix: str, problems: list[str]) -> None:
        self.prefix = prefix
        self.problems = problems
        if table is None:
            table = {}
        if not isinstance(table, dict):
            problems.append(f"[{prefix}] must be a table")
            table = {}
        self.table: dict[str, Any] = table

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{self.key(name)}: {message}")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any, hint: str) -> Any:
        if name not in self.table:
            return default
        value = self.table[name]
        if (
            isinstance(value, bool)
            and kind is not bool
            and bool not in (kind if isinstance(kind, tuple) else ())
        ):
            self.problem(name, f"expected {hint}, got {value!r}")
            return default
        if not isinstance(value, kind):
            self.problem(name, f"expected {hint}, got {value!r}")
            return default
        return value

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self.get(name, str, default, " or ".join(f'"{o}"' for o in options))
        if value not in options:
            self.problem(name, f"must be one of {', '.join(repr(o) for o in options)}, got {value!r}")
            return default
        return value

    def number(self, name: str, default: float, *, minimum: float, maximum: float, integer: bool) -> Any:
        kind: type | tuple[type, ...] = int if integer else (int, float)
        hint = "an integer" if integer else "a number"
        value = self.get(name, kind, default, hint)
        if not minimum <= value <= maximum:
            self.problem(name, f"must be between {minimum} and {maximum}, got {value!r}")
            return default
        return value

    def unknown_keys(self, known: set[str]) -> None:
        for name in sorted(set(self.table) - known):
            self.problem(name, f"unknown setting (known: {', '.join(sorted(known))})")

"""core.config.build_section: the one way a TOML table becomes a settings section."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from core.config import (
    InvalidSettings,
    build_section,
    check_section,
    out_of_range,
    setting,
    try_build_section,
)


def _level(value: object) -> int:
    if value not in ("low", "high"):
        raise ValueError(f'expected "low" or "high", got {value!r}')
    return 1 if value == "low" else 2


@dataclass(frozen=True)
class Pump:
    """A test-only section: one field of each kind the sections use."""

    # `rate` was called `speed` before: old files keep working, with a warning.
    renamed_keys: ClassVar[dict[str, str]] = {"speed": "rate"}

    rate: float = setting("litres a minute", 1.0)
    count: int = setting("pumps", 2)
    enabled: bool = setting("on or off", True)
    mode: Literal["push", "pull"] = setting('"push" or "pull"', "push")
    names: tuple[str, ...] = setting("pump names", ())
    label: str | None = setting("a label", None)
    path: Path = setting("a file", Path("pump.json"))
    level: int = setting("a level written as text", 0, key="level_name", parse=_level)

    def problems(self) -> list[str]:
        return out_of_range(self, {"rate": (0, 10), "count": (1, 8)})


@dataclass(frozen=True)
class Valve:
    """A section that code makes directly too, so it checks itself on creation."""

    name: str = setting("which valve (required)")
    open_pct: int = setting("how open", 100)

    def __post_init__(self) -> None:
        check_section(self, f"valve {self.name!r}")

    def problems(self) -> list[str]:
        return out_of_range(self, {"open_pct": (0, 100)})


def build(table, base=None):
    problems: list[str] = []
    return build_section(Pump, table, "pump", problems, base), problems


def test_values_are_typed_and_converted():
    pump, problems = build({"rate": 3, "names": ["a", "b"], "label": "", "path": "p.json", "mode": "pull"})
    assert problems == []
    assert pump == Pump(rate=3.0, names=("a", "b"), label=None, path=Path("p.json"), mode="pull")
    assert isinstance(pump.rate, float)
    assert build({})[0] == Pump()


def test_every_problem_of_a_table_is_reported_together():
    table = {"rate": "fast", "count": 9, "enabled": "yes", "mode": "sideways", "names": [1], "colour": "red"}
    pump, problems = build(table)
    assert problems == [  # wrong types and unknown keys as read, then the values' checks
        "pump.rate: expected a number, got 'fast'",
        "pump.enabled: expected true or false, got 'yes'",
        "pump.names: expected a list of strings, got [1]",
        "pump.colour: unknown setting (known: count, enabled, label, level_name, mode, names, path, rate)",
        "pump.mode: must be one of 'push', 'pull', got 'sideways'",
        "pump.count: must be between 1 and 8, got 9",
    ]
    assert pump.rate == 1.0  # a value of the wrong type is not used


def test_booleans_are_not_numbers_and_integers_not_booleans():
    _, problems = build({"count": True, "enabled": 1})
    assert problems == [
        "pump.count: expected an integer, got True",
        "pump.enabled: expected true or false, got 1",
    ]


def test_a_parse_hook_reads_values_toml_has_no_type_for():
    assert build({"level_name": "high"}) == (Pump(level=2), [])
    _, problems = build({"level_name": 3})
    assert problems == ['pump.level_name: expected "low" or "high", got 3']


def test_a_renamed_key_is_accepted_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="core.config"):
        pump, problems = build({"speed": 4})
    assert (pump.rate, problems) == (4.0, [])
    assert [r.getMessage() for r in caplog.records] == ["config: pump.speed is deprecated: rename it to rate"]
    _, problems = build({"speed": 4, "rate": 5})
    assert problems == ["pump.speed: renamed to rate, which is set too: remove speed"]
    _, problems = build({"speed": "x"})
    assert problems == ["pump.rate: expected a number, got 'x'"]


def test_over_a_base_and_not_a_table():
    base = Pump(count=4)
    pump, problems = build({"rate": 2}, base)
    assert (pump.count, pump.rate, problems) == (4, 2.0, [])
    pump, problems = build("fast", base)
    assert (pump, problems) == (base, ["[pump] must be a table"])


def test_required_keys_and_sections_that_check_themselves():
    problems: list[str] = []
    assert try_build_section(Valve, {"open_pct": 50}, "valves[0]", problems) is None
    assert problems == ["valves[0].name: missing: which valve (required)"]
    problems = []
    assert try_build_section(Valve, {"name": "v", "open_pct": 150}, "valves[0]", problems) is None
    assert problems == ["valves[0].open_pct: must be between 0 and 100, got 150"]
    with pytest.raises(InvalidSettings, match="valve 'v': open_pct: must be between 0 and 100, got -1"):
        Valve("v", -1)
    assert try_build_section(Valve, {"name": "v"}, "valves[0]", []) == Valve("v")

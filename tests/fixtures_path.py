"""Where the recorded real-data fixtures live: ``tests/fixtures`` (see its README)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def recorded_fixture(name: str) -> Path:
    """The path of a recorded fixture, e.g. ``recorded_fixture("zendesk/ticket.json")``."""
    return FIXTURES / name

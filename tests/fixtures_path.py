"""Where the shared real-data fixtures live: ``<repo>/../shared/fixtures`` (see its README)."""

from __future__ import annotations

from pathlib import Path

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def shared_fixture(name: str) -> Path:
    """The path of a shared fixture, e.g. ``shared_fixture("zendesk/ticket_create_response.json")``."""
    path = SHARED_FIXTURES / name
    if not path.is_file():
        raise FileNotFoundError(
            f"shared fixture {name!r} not found at {path}: the tests expect the shared/ folder next to "
            f"the repository ({SHARED_FIXTURES.parent.parent}/shared/fixtures)"
        )
    return path

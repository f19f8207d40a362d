"""Where the shared real-data fixtures live (recorded Zendesk API responses; see their README).

They are not part of this repository: they sit in ``shared/fixtures`` beside it. A clone made
elsewhere (``git clone /work/main /tmp/x``) finds them beside the repository it was cloned from,
and ``DRAFTDESK_SHARED_FIXTURES`` points anywhere else.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV_VAR = "DRAFTDESK_SHARED_FIXTURES"


def _origin_checkout() -> Path | None:
    """The local repository this one was cloned from, if it was cloned from a local path."""
    try:
        url = subprocess.run(
            ["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(url.removeprefix("file://"))
    return path.resolve() if url and path.is_dir() else None


def _candidates() -> Iterator[Path]:
    if os.environ.get(ENV_VAR):
        yield Path(os.environ[ENV_VAR])
    yield REPO.parent / "shared" / "fixtures"
    origin = _origin_checkout()
    if origin is not None:
        yield origin.parent / "shared" / "fixtures"


def shared_fixture(name: str) -> Path:
    """The path of a shared fixture, e.g. ``shared_fixture("zendesk/ticket_create_response.json")``."""
    looked = []
    for folder in _candidates():
        path = folder / name
        if path.is_file():
            return path
        looked.append(str(folder))
    raise FileNotFoundError(
        f"shared fixture {name!r} not found in {', '.join(looked)}: put the shared/ folder next to the "
        f"repository, or set {ENV_VAR} to its fixtures folder"
    )

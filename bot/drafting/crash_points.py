"""Named moments at which a test can make the process kill itself with SIGKILL, to prove that a
crash there loses nothing and posts nothing twice (tests/test_crash_exactly_once.py).

``DRAFTDESK_CRASH_AT=name`` kills the process the first time the moment ``name`` is reached;
``name@N`` the N-th time. Unset (always, in production) a crash point is one comparison.
"""

from __future__ import annotations

import os
import signal
import threading

CRASH_ENV = "DRAFTDESK_CRASH_AT"

_wanted, _, _nth = os.environ.get(CRASH_ENV, "").partition("@")
_times = int(_nth) if _nth.isdigit() else 1
_reached = 0
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Kill this process here (SIGKILL: no clean-up, no flush) if the environment asks for it."""
    global _reached
    if not _wanted or name != _wanted:
        return
    with _lock:
        _reached += 1
        if _reached >= _times:
            os.kill(os.getpid(), signal.SIGKILL)

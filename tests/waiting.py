"""Waiting for the running bot's threads: polling a condition, and the drafts of a ticket posted."""

from __future__ import annotations

import time
from collections.abc import Callable

from core.domain import JOB_QUEUED, JOB_RUNNING
from core.ports import Store


def wait_until(condition: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not met in {timeout} s")


def drafts_posted(store: Store, ticket_id: int, count: int = 3) -> bool:
    """The queue is idle and the ticket's thread holds ``count`` drafts, each with its vote buttons."""
    drafts = store.drafts_for_ticket(ticket_id)
    return (
        not store.jobs(JOB_QUEUED)
        and not store.jobs(JOB_RUNNING)
        and store.ticket_thread(ticket_id) is not None
        and len(drafts) == count
        and all(d.vote_ts for d in drafts)
    )

"""Intake: Zendesk webhooks and the incremental-export poller both feed the store's one queue."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.domain import FINISHED_STATUSES, TicketChange, utcnow
from core.ports import Store
from integrations.zendesk_webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookAuthError,
    WebhookPayloadError,
    parse_ticket_ids,
    verify_signature,
)

log = logging.getLogger(__name__)

META_CURSOR = "poll_cursor"
META_SINCE = "poll_since"


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    body: dict


def handle_zendesk_webhook(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    store: Store,
    on_queued: Callable[[], None] = lambda: None,
    max_bytes: int = 2_000_000,
    now: float | None = None,
) -> WebhookResponse:
    """Verify, parse and queue. Nothing is queued unless the signature is valid and fresh.

    Only the ticket id is queued: the worker fetches the ticket itself, so the webhook answers
    at once and a forged or stale body can never put customer text into Slack.
    """
    if len(body) > max_bytes:
        return WebhookResponse(413, {"error": f"body over {max_bytes} bytes"})
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        verify_signature(
            secret,
            body,
            lowered.get(SIGNATURE_HEADER.lower()),
            lowered.get(TIMESTAMP_HEADER.lower()),
            now=now,
        )
    except WebhookAuthError as exc:
        log.warning("rejected Zendesk webhook: %s", exc)
        return WebhookResponse(401, {"error": "invalid signature"})
    try:
        ticket_ids = parse_ticket_ids(body)
    except WebhookPayloadError as exc:
        log.warning("malformed Zendesk webhook: %s", exc)
        return WebhookResponse(400, {"error": str(exc)})
    queued = [tid for tid in ticket_ids if store.enqueue(tid, source="webhook")]
    for ticket_id in ticket_ids:
        outcome = "queued" if ticket_id in queued else "already queued"
        log.info("webhook accepted: ticket %s %s", ticket_id, outcome, extra={"ticket_id": ticket_id})
    if queued:
        on_queued()
    return WebhookResponse(
        200, {"queued": queued, "already_queued": [t for t in ticket_ids if t not in queued]}
    )


class ChangeFeed(Protocol):
    def incremental_changes(
        self, cursor: str | None, start_time: int
    ) -> Iterator[tuple[list[TicketChange], str | None, bool]]: ...


class Poller:
    """Reads the incremental ticket export from the persisted cursor and queues new work.

    The cursor is saved after each page, once that page's jobs are queued: a restart resumes
    at the first page not yet fully queued, and the queue's dedup absorbs the overlap.
    """

    def __init__(
        self,
        store: Store,
        feed: ChangeFeed,
        configured_since: datetime | None,
        on_queued: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.feed = feed
        self.on_queued = on_queued
        self.clock = clock
        self.since = self._resolve_since(configured_since)

    def _resolve_since(self, configured: datetime | None) -> datetime:
        stored = self.store.get_meta(META_SINCE)
        if configured is not None:
            wanted = configured
        elif stored is not None:
            wanted = datetime.fromisoformat(stored)
        else:
            wanted = self.clock()  # default: only tickets created after the first start
        if stored is None or datetime.fromisoformat(stored) != wanted:
            # A new starting point (first start or a changed poll_since) restarts the export there.
            self.store.set_meta(META_SINCE, wanted.isoformat())
            self.store.set_meta(META_CURSOR, None)
        return wanted

    def poll_once(self) -> int:
        cursor = self.store.get_meta(META_CURSOR)
        queued = 0
        for changes, next_cursor, end_of_stream in self.feed.incremental_changes(
            cursor, int(self.since.timestamp())
        ):
            for change in changes:
                if change.created_at < self.since:
                    continue
                if change.status in FINISHED_STATUSES and self.store.ticket_thread(change.id) is None:
                    continue  # answered before it had drafts: nothing to draft, nothing to measure
                if self.store.enqueue(change.id, source="poll"):
                    queued += 1
            if next_cursor:
                self.store.set_meta(META_CURSOR, next_cursor)
            if end_of_stream:
                break
        if queued:
            log.info("poll queued %s ticket(s)", queued)
            self.on_queued()
        return queued

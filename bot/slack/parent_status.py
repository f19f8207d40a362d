"""The status line on a ticket's parent message: what an agent scanning the channel needs to see
without opening the thread. Answered ("✅ Draft B sent by @grace as an internal note"), or, after a
customer reply, that a new round waits.

The line is a block of its own (``status``) in the parent message, set by reading the message back
from Slack and replacing that block alone, so the rest (subject, requester, Help Center links)
stays as it was posted. It is refreshed when a draft is sent and when a later round is posted, by
`ParentStatus` on a thread of its own: one refresh at a time, each computed from the store as it is
then, so two sends at once or a send while a round posts end with the line the store says, and
neither the agent's confirmation nor the worker waits on Slack for it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bot.slack.blocks import draft_name
from bot.store.documents import ts_time
from core.domain import SEND_SENT
from core.ports import ChatError, ChatPoster, Store

log = logging.getLogger(__name__)

STATUS_BLOCK = "status"


def status_line(store: Store, ticket_id: int) -> str | None:
    """The ticket's status as mrkdwn; None while its first round waits (the parent says it all)."""
    drafts = [d for d in store.drafts_for_ticket(ticket_id) if d.slack_ts]  # rounds in the thread
    if not drafts:
        return None
    newest = max(d.round_number for d in drafts)
    posted_at = min(ts_time(d.slack_ts[0]) for d in drafts if d.round_number == newest)
    by_id = {d.id: d for d in drafts}
    # Answered: a send since the newest round was posted, of its drafts or of an older round's.
    sends = [
        s
        for round_id in sorted({d.round_id for d in drafts})
        for s in store.sends_for_round(round_id)
        if s.state == SEND_SENT
        and s.draft_id in by_id
        and (by_id[s.draft_id].round_number == newest or s.started_at >= posted_at)
    ]
    if sends:
        sent = "; ".join(
            f"{draft_name(by_id[s.draft_id].label, by_id[s.draft_id].round_number)} sent by <@{s.user}> as "
            f"{'a public reply' if s.public else 'an internal note'}"
            for s in sorted(sends, key=lambda s: s.started_at)
        )
        return f":white_check_mark: Answered: {sent}"
    if newest > 1:
        return f":speech_balloon: The customer replied: round {newest} drafts are in the thread"
    return None


def with_status(blocks: list[dict[str, Any]], line: str | None) -> list[dict[str, Any]]:
    """``blocks`` with the status block set to ``line`` (or removed), just after the ticket block."""
    kept = [b for b in blocks if b.get("block_id") != STATUS_BLOCK]
    if line is None:
        return kept
    status = {
        "type": "context",
        "block_id": STATUS_BLOCK,
        "elements": [{"type": "mrkdwn", "text": line, "verbatim": True}],
    }
    at = next((i + 1 for i, b in enumerate(kept) if b.get("block_id") == "ticket"), len(kept))
    return [*kept[:at], status, *kept[at:]]


def refresh_parent_status(store: Store, poster: ChatPoster, ticket_id: int) -> None:
    """Sets the status line of the ticket's parent message; a chat failure is logged, not raised
    (the drafts and the send are recorded already: a stale line is the worst outcome)."""
    thread = store.ticket_thread(ticket_id)
    if thread is None:
        return
    channel, ts = thread
    try:
        current = poster.message(channel, ts)
        if current is None:
            return
        text, blocks = current
        updated = with_status(blocks, status_line(store, ticket_id))
        if updated != blocks:
            poster.update(channel, ts, text, updated)
    except ChatError as exc:
        log.warning("could not update the status of ticket %s in Slack: %s", ticket_id, exc)


class ParentStatus:
    """Refreshes parents' status lines one at a time, on a thread of its own (see the module)."""

    def __init__(self, store: Store, poster: ChatPoster) -> None:
        self.store = store
        self.poster = poster
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parent-status")

    def refresh_later(self, ticket_id: int) -> None:
        try:
            self._executor.submit(self._refresh, ticket_id)
        except RuntimeError:  # shutting down (the worker may still post a round): the line can wait
            log.info("not updating the status of ticket %s: draftdesk is stopping", ticket_id)

    def close(self) -> None:
        """Finishes the refreshes asked for (each gives up with Slack's retries), then stops."""
        self._executor.shutdown(wait=True)

    def _refresh(self, ticket_id: int) -> None:
        try:
            refresh_parent_status(self.store, self.poster, ticket_id)
        except Exception:  # a thread of its own: nothing above it would see the error
            log.exception("could not update the status of ticket %s in Slack", ticket_id)

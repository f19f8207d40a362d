"""Thin Bolt listeners: parse the Slack payload, call the store and Zendesk, answer the user.

Bolt acknowledges each request before these run (process_before_response=False), so Slack's
3-second limit holds even while Zendesk or the store is slow.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from slack_bolt import Ack, App

from bot.blocks import SCORE_REACTIONS, draft_message, score_from_action_id, vote_confirmation
from bot.store import DraftRecord, Store, utcnow
from core.domain import Vote
from integrations.slack import SlackPoster

log = logging.getLogger(__name__)


class NoteSink(Protocol):
    def add_internal_note(self, ticket_id: int, body: str) -> None: ...


class DraftActions:
    """The domain side of the listeners, testable without Bolt."""

    def __init__(
        self, store: Store, poster: SlackPoster, zendesk: NoteSink, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.store = store
        self.poster = poster
        self.zendesk = zendesk
        self.clock = clock

    def vote(self, draft_id: str, rater: str, score: int, source: str) -> DraftRecord | None:
        draft = self.store.draft(draft_id)
        if draft is None:
            return None
        self.store.record_vote(
            Vote(draft.ticket_id, draft.id, draft.model, rater, score, source, self.clock())
        )
        self.refresh(draft)
        return draft

    def unvote_reaction(self, channel: str, ts: str, rater: str, score: int) -> None:
        draft = self.store.draft_by_message(channel, ts)
        if draft and self.store.remove_reaction_vote(draft.id, rater, score):
            self.refresh(draft)

    def send_to_zendesk(self, draft_id: str, user: str) -> DraftRecord | None:
        """Adds the draft as an internal note once; a second click returns the draft unchanged."""
        draft = self.store.draft(draft_id)
        if draft is None or draft.text is None:
            return None
        if draft.sent_to_zendesk_by is not None:
            return draft
        self.zendesk.add_internal_note(draft.ticket_id, draft.text)
        self.store.mark_sent(draft.id, user)
        self.refresh(self.store.draft(draft.id) or draft)
        return draft

    def refresh(self, draft: DraftRecord) -> None:
        """Re-render the message that carries the buttons: new rating count, sent marker."""
        if not draft.channel or not draft.vote_ts or draft.text is None:
            return
        messages = draft_message(
            draft.label,
            draft.text,
            draft.id,
            rated_count=self.store.rated_count(draft.id),
            sent=draft.sent_to_zendesk_by is not None,
        )
        text, blocks = messages[-1]
        self.poster.update(draft.channel, draft.vote_ts, text, blocks)


def register_listeners(app: App, actions: DraftActions) -> None:
    poster = actions.poster

    def _context(body: dict[str, Any]) -> tuple[str, str, str | None]:
        channel = body.get("channel", {}).get("id") or body.get("container", {}).get("channel_id", "")
        thread_ts = body.get("message", {}).get("thread_ts")
        return channel, body["user"]["id"], thread_ts

    @app.action(re.compile(r"^rate_[1-5]$"))
    def on_rate(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        score = score_from_action_id(action["action_id"])
        channel, user, thread_ts = _context(body)
        if score is None:
            return
        draft = actions.vote(action["value"], user, score, "button")
        if draft is None:
            poster.ephemeral(channel, user, "This draft is not known to draftdesk any more.", thread_ts)
            return
        poster.ephemeral(channel, user, vote_confirmation(draft.label, score), thread_ts)

    @app.action("send_to_zendesk")
    def on_send(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        channel, user, thread_ts = _context(body)
        try:
            draft = actions.send_to_zendesk(action["value"], user)
        except Exception as exc:
            log.exception("sending draft %s to Zendesk failed", action.get("value"))
            poster.ephemeral(
                channel, user, f"Could not add the note in Zendesk: {exc}. Try again.", thread_ts
            )
            return
        if draft is None:
            poster.ephemeral(channel, user, "This draft is not known to draftdesk any more.", thread_ts)
            return
        if draft.sent_to_zendesk_by is not None:
            by = draft.sent_to_zendesk_by
            message = f"Draft {draft.label} was already added to ticket #{draft.ticket_id} by <@{by}>."
        else:
            message = f"Draft {draft.label} was added to ticket #{draft.ticket_id} as an internal note."
        poster.ephemeral(channel, user, message, thread_ts)

    @app.event("reaction_added")
    def on_reaction_added(event: dict[str, Any], context: dict[str, Any]) -> None:
        score = SCORE_REACTIONS.get(event.get("reaction", ""))
        item = event.get("item", {})
        if score is None or item.get("type") != "message" or event.get("user") == context.get("bot_user_id"):
            return
        draft = actions.store.draft_by_message(item.get("channel", ""), item.get("ts", ""))
        if draft is not None:
            actions.vote(draft.id, event["user"], score, "reaction")
            thread = actions.store.ticket_thread(draft.ticket_id)
            poster.ephemeral(
                item["channel"],
                event["user"],
                vote_confirmation(draft.label, score),
                thread[1] if thread else None,
            )

    @app.event("reaction_removed")
    def on_reaction_removed(event: dict[str, Any]) -> None:
        score = SCORE_REACTIONS.get(event.get("reaction", ""))
        item = event.get("item", {})
        if score is not None and item.get("type") == "message":
            actions.unvote_reaction(item.get("channel", ""), item.get("ts", ""), event["user"], score)

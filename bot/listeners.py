"""What agents do to drafts in Slack: `DraftActions` (votes, reactions, sending a draft to
Zendesk) and the thin Bolt listeners that feed it.

The listeners only pick out of Bolt what the actions need: who acted and where come from Bolt's
context (``context.user_id``, ``context.channel_id``, ``context.thread_ts``), the rest from the
action or event. Everything else, bad values included, is `DraftActions`' business, testable
without Bolt against any ``Store`` and ``ChatPoster``.

Bolt acknowledges each request before these run (process_before_response=False), so Slack's
3-second limit holds even while Zendesk or the store is slow.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext

from bot.blocks import SCORE_REACTIONS, draft_message, score_from_action_id, vote_confirmation
from core.domain import DraftRecord, Vote, utcnow
from core.ports import ChatError, ChatPoster, GatewayError, NoteSink, Store

log = logging.getLogger(__name__)

UNKNOWN_DRAFT = "This draft is not known to draftdesk any more."


class DraftActions:
    """The domain side of the listeners: records what agents do and answers them in Slack."""

    def __init__(
        self, store: Store, poster: ChatPoster, zendesk: NoteSink, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.store = store
        self.poster = poster
        self.zendesk = zendesk
        self.clock = clock

    # ---- what the listeners call: one method per Slack interaction ------------------------------

    def rate_button(
        self, user: str, channel: str, thread_ts: str | None, action_id: str, draft_id: str
    ) -> None:
        """A click on a score button (``rate_1`` … ``rate_5``) of the draft ``draft_id``."""
        score = score_from_action_id(action_id)
        if score is None or not user:
            log.warning("ignored a rating click: action %r by user %r", action_id, user)
            return
        draft = self.vote(draft_id, user, score, "button")
        text = UNKNOWN_DRAFT if draft is None else vote_confirmation(draft.label, score)
        self._tell(channel, user, text, thread_ts)

    def send_button(self, user: str, channel: str, thread_ts: str | None, draft_id: str) -> None:
        """A click on "Send to Zendesk": the draft becomes one internal note on its ticket."""
        if not user:
            log.warning("ignored a send-to-Zendesk click without a user")
            return
        try:
            draft = self.send_to_zendesk(draft_id, user)
        except GatewayError as exc:
            log.warning("sending draft %s to Zendesk failed: %s", draft_id, exc)
            self._tell(channel, user, f"Could not add the note in Zendesk: {exc}. Try again.", thread_ts)
            return
        if draft is None:
            message = UNKNOWN_DRAFT
        elif draft.sent_to_zendesk_by is not None:
            by = draft.sent_to_zendesk_by
            message = f"Draft {draft.label} was already added to ticket #{draft.ticket_id} by <@{by}>."
        else:
            message = f"Draft {draft.label} was added to ticket #{draft.ticket_id} as an internal note."
        self._tell(channel, user, message, thread_ts)

    def reaction_added(self, user: str, reaction: str, item_type: str, channel: str, ts: str) -> None:
        """A reaction on an item (``item_type``: message, file...): a score reaction on one of a
        draft's messages is a vote."""
        score = SCORE_REACTIONS.get(reaction)
        if score is None or item_type != "message" or not user:
            return
        draft = self.store.draft_by_message(channel, ts)
        if draft is None:
            return
        self.vote(draft.id, user, score, "reaction")
        thread = self.store.ticket_thread(draft.ticket_id)
        self._tell(channel, user, vote_confirmation(draft.label, score), thread[1] if thread else None)

    def reaction_removed(self, user: str, reaction: str, item_type: str, channel: str, ts: str) -> None:
        """Removing a score reaction removes the vote, if that reaction is still the user's vote."""
        score = SCORE_REACTIONS.get(reaction)
        if score is not None and item_type == "message" and user:
            self.unvote_reaction(channel, ts, user, score)

    # ---- the steps ------------------------------------------------------------------------------

    def vote(self, draft_id: str, rater: str, score: int, source: str) -> DraftRecord | None:
        """Record the vote; None for a draft that is unknown or has no text (nothing to rate)."""
        draft = self.store.draft(draft_id)
        if draft is None or draft.text is None:
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
        """Re-render the message that carries the buttons: new rating count, sent marker.

        The vote or note is recorded already: a chat failure here is logged, not raised.
        """
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
        try:
            self.poster.update(draft.channel, draft.vote_ts, text, blocks)
        except ChatError as exc:
            log.warning("could not update the message of draft %s: %s", draft.id, exc)

    def _tell(self, channel: str, user: str, text: str, thread_ts: str | None) -> None:
        """An ephemeral answer; what it answers is recorded already, so a failure is only logged."""
        try:
            self.poster.ephemeral(channel, user, text, thread_ts)
        except ChatError as exc:
            log.warning("could not answer %s in %s: %s", user, channel, exc)


def register_listeners(app: App, actions: DraftActions) -> None:
    """Every Slack request the bot takes is matched here (an unmatched one would answer 404)."""

    @app.action(re.compile(r"^rate_[1-5]$"))
    def on_rate(ack: Ack, action: dict[str, Any], context: BoltContext) -> None:
        ack()
        actions.rate_button(
            context.user_id or "",
            context.channel_id or "",
            context.thread_ts,
            action["action_id"],
            action.get("value", ""),
        )

    @app.action("send_to_zendesk")
    def on_send(ack: Ack, action: dict[str, Any], context: BoltContext) -> None:
        ack()
        actions.send_button(
            context.user_id or "", context.channel_id or "", context.thread_ts, action.get("value", "")
        )

    @app.event("reaction_added")
    def on_reaction_added(event: dict[str, Any], context: BoltContext) -> None:
        if context.user_id == context.bot_user_id:
            return  # the bot's own reaction (Bolt drops these too, unless told otherwise)
        actions.reaction_added(context.user_id or "", *_reaction(event, context))

    @app.event("reaction_removed")
    def on_reaction_removed(event: dict[str, Any], context: BoltContext) -> None:
        actions.reaction_removed(context.user_id or "", *_reaction(event, context))


def _reaction(event: dict[str, Any], context: BoltContext) -> tuple[str, str, str, str]:
    """(reaction, item type, channel, message ts) of a reaction event; the channel from the context."""
    item = event.get("item") or {}
    return event.get("reaction", ""), item.get("type", ""), context.channel_id or "", item.get("ts", "")

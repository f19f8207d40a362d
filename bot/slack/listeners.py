"""What agents do to drafts in Slack: `DraftActions` (votes, reactions, sending a draft to
Zendesk) and the thin Bolt listeners that feed it.

The listeners only pick out of Bolt what the actions need: who acted and where come from Bolt's
context (``context.user_id``, ``context.channel_id``, ``context.thread_ts``), the rest from the
action or event. Everything else, bad values included, is `DraftActions`' business, testable
without Bolt against any ``Store`` and ``ChatPoster``.

A listener records a vote in the store (a few milliseconds) before it acks, so a vote Slack was
told about is on disk even if the process is killed right after; everything slower goes to
`AfterAck`. Bolt answers from the thread
that took the request (``process_before_response=True``, see `new_bolt_app`), never waiting for a
free thread of its own listener pool, so Slack's 3-second limit holds however slow the store,
Slack or Zendesk is. `AfterAck` runs one user's actions in the order they arrived (a second click
replaces the first vote) and different users' actions side by side.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient

from bot.slack.blocks import (
    REASON_ACTION,
    REASON_NOTE_ACTION,
    REASON_NOTE_LIMIT,
    SCORE_REACTIONS,
    draft_id_of_block,
    reason_noted,
    reason_picker,
    score_from_action_id,
    vote_confirmation,
)
from bot.slack.draft_view import render_draft
from bot.slack.home import AgentHome
from bot.slack.send_views import CALLBACK_ID
from bot.slack.sending import UNKNOWN_DRAFT, SendFlow
from core.domain import NEGATIVE_SCORES, VOTE_REASONS, DraftRecord, Vote, utcnow
from core.ports import ChatError, ChatPoster, Store

log = logging.getLogger(__name__)

__all__ = ["UNKNOWN_DRAFT", "AfterAck", "DraftActions", "new_bolt_app", "register_listeners"]


@dataclass(frozen=True)
class RatingClick:
    """A rating click once its vote is stored: the score, and the draft (None: not known here)."""

    score: int
    draft: DraftRecord | None


class DraftActions:
    """The domain side of the listeners: records what agents do and answers them in Slack."""

    def __init__(self, store: Store, poster: ChatPoster, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.poster = poster
        self.clock = clock

    # ---- what the listeners call: one method per Slack interaction ------------------------------

    def rate_button(
        self, user: str, channel: str, thread_ts: str | None, action_id: str, draft_id: str
    ) -> None:
        """A click on a score button (``rate_1`` … ``rate_5``) of the draft ``draft_id``."""
        self.confirm_rating(user, channel, thread_ts, self.record_rating(user, action_id, draft_id))

    def record_rating(self, user: str, action_id: str, draft_id: str) -> RatingClick | None:
        """The store side of a rating click, done before the ack, so a vote Slack was told about is
        on disk. None for a click that is no rating."""
        score = score_from_action_id(action_id)
        if score is None or not user:
            log.warning("ignored a rating click: action %r by user %r", action_id, user)
            return None
        return RatingClick(score, self.vote(draft_id, user, score, "button"))

    def confirm_rating(
        self, user: str, channel: str, thread_ts: str | None, click: RatingClick | None
    ) -> None:
        """The slow side of a rating click, after the ack: the draft's message and the answer."""
        if click is None:
            return
        if click.draft is None:
            self._tell(channel, user, UNKNOWN_DRAFT, thread_ts)
            return
        self.refresh(click.draft)
        self._confirm_vote(channel, user, click.draft, click.score, thread_ts)

    def vote_reason(
        self, user: str, channel: str, thread_ts: str | None, draft_id: str, reason: str, note: str | None
    ) -> None:
        """The agent said why the draft they rated 1 or 2 failed: kept with their vote."""
        note = (note or "").strip()[:REASON_NOTE_LIMIT] or None
        if note is not None:
            reason = "other"
        if reason not in VOTE_REASONS or not user:
            log.warning("ignored a vote reason %r by user %r", reason, user)
            return
        draft = self.store.draft(draft_id)
        if draft is None:
            self._tell(channel, user, UNKNOWN_DRAFT, thread_ts)
            return
        if thread_ts is None:  # an action on an ephemeral message carries no thread: answer in the draft's
            thread = self.store.ticket_thread(draft.ticket_id)
            thread_ts = thread[1] if thread else None
        if self.store.set_vote_reason(draft.id, user, reason, note):
            self._tell(channel, user, reason_noted(draft.label, reason, note), thread_ts)
        else:
            text = (
                f"Your rating of Draft {draft.label} is no longer a 1 or 2 (changed or taken back), "
                "so no reason was kept."
            )
            self._tell(channel, user, text, thread_ts)

    def reaction_added(self, user: str, reaction: str, item_type: str, channel: str, ts: str) -> None:
        """A reaction on an item (``item_type``: message, file...): a score reaction on one of a
        draft's messages is a vote."""
        draft = self.record_reaction(user, reaction, item_type, channel, ts)
        self.confirm_reaction(user, reaction, channel, draft)

    def record_reaction(
        self, user: str, reaction: str, item_type: str, channel: str, ts: str
    ) -> DraftRecord | None:
        """The store side of a reaction, done before the event is acknowledged; the draft voted on."""
        score = SCORE_REACTIONS.get(reaction)
        if score is None or item_type != "message" or not user:
            return None
        draft = self.store.draft_by_message(channel, ts)
        if draft is None:
            return None
        return self.vote(draft.id, user, score, "reaction")

    def confirm_reaction(self, user: str, reaction: str, channel: str, draft: DraftRecord | None) -> None:
        """The slow side of a reaction vote: the draft's message and the answer."""
        score = SCORE_REACTIONS.get(reaction)
        if draft is None or score is None:
            return
        self.refresh(draft)
        thread = self.store.ticket_thread(draft.ticket_id)
        self._confirm_vote(channel, user, draft, score, thread[1] if thread else None)

    def reaction_removed(self, user: str, reaction: str, item_type: str, channel: str, ts: str) -> None:
        """Removing a score reaction removes the vote, if that reaction is still the user's vote."""
        draft = self.record_reaction_removed(user, reaction, item_type, channel, ts)
        if draft is not None:
            self.refresh(draft)

    def record_reaction_removed(
        self, user: str, reaction: str, item_type: str, channel: str, ts: str
    ) -> DraftRecord | None:
        """The store side of a removed reaction; the draft whose vote it removed."""
        score = SCORE_REACTIONS.get(reaction)
        if score is None or item_type != "message" or not user:
            return None
        draft = self.store.draft_by_message(channel, ts)
        if draft and self.store.remove_reaction_vote(draft.id, user, score):
            return draft
        return None

    # ---- the steps ------------------------------------------------------------------------------

    def vote(self, draft_id: str, rater: str, score: int, source: str) -> DraftRecord | None:
        """Record the vote (the message is re-rendered later, by the caller); None for a draft that
        is unknown or has no text (nothing to rate)."""
        draft = self.store.draft(draft_id)
        if draft is None or draft.text is None:
            return None
        self.store.record_vote(
            Vote(
                draft.ticket_id,
                draft.id,
                draft.model,
                rater,
                score,
                source,
                self.clock(),
                model_version=draft.model_version,
            )
        )
        return draft

    def refresh(self, draft: DraftRecord) -> None:
        """Re-render the message that carries the buttons: new rating count, sent marker.

        The vote or note is recorded already: a chat failure here is logged, not raised.
        """
        if not draft.channel or not draft.vote_ts or draft.text is None:
            return
        text, blocks = render_draft(self.store, draft)[-1]
        try:
            self.poster.update(draft.channel, draft.vote_ts, text, blocks)
        except ChatError as exc:
            log.warning("could not update the message of draft %s: %s", draft.id, exc)

    def _confirm_vote(
        self, channel: str, user: str, draft: DraftRecord, score: int, thread_ts: str | None
    ) -> None:
        """The voter's own score; a 1 or 2 also asks, optionally, what was wrong."""
        if score in NEGATIVE_SCORES:
            text, blocks = reason_picker(draft.label, score, draft.id)
            self._tell(channel, user, text, thread_ts, blocks)
        else:
            self._tell(channel, user, vote_confirmation(draft.label, score), thread_ts)

    def _tell(
        self, channel: str, user: str, text: str, thread_ts: str | None, blocks: list[dict] | None = None
    ) -> None:
        """An ephemeral answer; what it answers is recorded already, so a failure is only logged."""
        try:
            self.poster.ephemeral(channel, user, text, thread_ts, blocks)
        except ChatError as exc:
            log.warning("could not answer %s in %s: %s", user, channel, exc)


class AfterAck:
    """Runs the slow part of each Slack interaction after its ack, on threads of its own.

    Work submitted under one key (the acting user) runs in submission order, one item at a time;
    different keys run side by side on up to ``threads`` threads. A failure is logged, never
    raised: the request it came from was answered long ago.
    """

    def __init__(self, threads: int = 8) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="after-ack")
        self._lock = threading.Condition()
        self._queues: dict[str, deque[Callable[[], None]]] = {}  # keys with work queued or running
        self._unfinished = 0

    def submit(self, key: str, work: Callable[[], None]) -> None:
        with self._lock:
            self._unfinished += 1
            queue = self._queues.get(key)
            if queue is not None:  # this key's drain is running: it takes the work in turn
                queue.append(work)
                return
            self._queues[key] = deque()
        self._pool.submit(self._drain, key, work)

    def _drain(self, key: str, work: Callable[[], None]) -> None:
        while True:
            try:
                work()
            except Exception:
                log.exception("a Slack action failed after its ack")
            with self._lock:
                self._unfinished -= 1
                queue = self._queues[key]
                if not queue:
                    del self._queues[key]
                    self._lock.notify_all()
                    return
                work = queue.popleft()

    def wait_idle(self, timeout: float) -> bool:
        """True once every submitted item has run; False if some still wait after ``timeout`` s."""
        with self._lock:
            return self._lock.wait_for(lambda: self._unfinished == 0, timeout)

    def shutdown(self) -> None:
        """Runs what was submitted, then stops the threads; submit nothing after this."""
        self._pool.shutdown(wait=True)


def new_bolt_app(client: WebClient | None, signing_secret: str, verify_requests: bool, **kwargs: Any) -> App:
    """The Bolt app the listeners expect: it runs a listener (which only acks and hands its work to
    `AfterAck`) in the request's own thread and answers with the ack, in HTTP and Socket Mode."""
    logging.getLogger("slack_bolt.App").addFilter(_TOKEN_UNUSED_FILTER)  # adds it once
    return App(
        client=client,
        signing_secret=signing_secret,
        request_verification_enabled=verify_requests,
        process_before_response=True,
        **kwargs,
    )


class _WithoutTokenUnusedWarning(logging.Filter):
    """Given a client, Bolt still reads SLACK_BOT_TOKEN and warns that this token "will be unused":
    our client carries that very token, so the warning only alarms the admin reading the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


_TOKEN_UNUSED_FILTER = _WithoutTokenUnusedWarning()


def register_listeners(
    app: App, actions: DraftActions, after_ack: AfterAck, sending: SendFlow, home: AgentHome | None = None
) -> None:
    """Every Slack request the bot takes is matched here (an unmatched one would answer 404).

    "Send to Zendesk" opens the modal in the listener's own thread, right after the ack: a click's
    ``trigger_id`` opens a modal only within 3 s of the click, so it must not wait in `AfterAck`
    behind the same agent's earlier work. `SendFlow.open_modal` reads only the store, so the
    ``views.open`` call goes out milliseconds after the click; what needs Zendesk follows in
    `AfterAck` as an update of the open modal. A submission is checked before its ack (the ack
    carries the field errors), and its send is recorded there too (a small store write), so two
    submissions at once cannot both pass the round's check.
    """

    @app.action(re.compile(r"^rate_[1-5]$"))
    def on_rate(ack: Ack, action: dict[str, Any], context: BoltContext) -> None:
        user, channel, thread_ts = context.user_id or "", context.channel_id or "", context.thread_ts
        action_id, draft_id = action["action_id"], action.get("value", "")
        click = actions.record_rating(user, action_id, draft_id)  # on disk before Slack hears "ok"
        ack()
        after_ack.submit(user, lambda: actions.confirm_rating(user, channel, thread_ts, click))

    @app.action("send_to_zendesk")
    def on_send(ack: Ack, action: dict[str, Any], body: dict[str, Any], context: BoltContext) -> None:
        ack()
        user, channel, thread_ts = context.user_id or "", context.channel_id or "", context.thread_ts
        if not user:
            return
        opened = sending.open_modal(
            body.get("trigger_id", ""), user, channel, thread_ts, action.get("value", "")
        )
        if opened is not None:
            after_ack.submit(user, lambda: sending.check_ticket(opened))

    @app.view(CALLBACK_ID)
    def on_send_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], context: BoltContext) -> None:
        user = context.user_id or ""
        answer, then = sending.submit(user, (body.get("user") or {}).get("name", ""), view)
        if answer:
            ack(**answer)
        else:
            ack()
        if then is not None:
            after_ack.submit(user, then)

    @app.action(REASON_ACTION)
    def on_reason(ack: Ack, action: dict[str, Any], context: BoltContext) -> None:
        ack()
        user, channel, thread_ts = context.user_id or "", context.channel_id or "", context.thread_ts
        draft_id = draft_id_of_block(action.get("block_id", ""))
        reason = (action.get("selected_option") or {}).get("value", "")
        after_ack.submit(user, lambda: actions.vote_reason(user, channel, thread_ts, draft_id, reason, None))

    @app.action(REASON_NOTE_ACTION)
    def on_reason_note(ack: Ack, action: dict[str, Any], context: BoltContext) -> None:
        ack()
        user, channel, thread_ts = context.user_id or "", context.channel_id or "", context.thread_ts
        draft_id, note = draft_id_of_block(action.get("block_id", "")), action.get("value") or ""
        after_ack.submit(user, lambda: actions.vote_reason(user, channel, thread_ts, draft_id, "other", note))

    @app.event("reaction_added")
    def on_reaction_added(event: dict[str, Any], context: BoltContext) -> None:
        if context.user_id == context.bot_user_id:
            return  # the bot's own reaction (Bolt drops these too, unless told otherwise)
        user, (name, item_type, channel, ts) = context.user_id or "", _reaction(event, context)
        draft = actions.record_reaction(user, name, item_type, channel, ts)  # before Bolt acks the event
        after_ack.submit(user, lambda: actions.confirm_reaction(user, name, channel, draft))

    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any], context: BoltContext) -> None:
        user = context.user_id or ""
        if home is not None and user and event.get("tab", "home") == "home":
            after_ack.submit(user, lambda: home.publish(user))

    @app.event("reaction_removed")
    def on_reaction_removed(event: dict[str, Any], context: BoltContext) -> None:
        user, (name, item_type, channel, ts) = context.user_id or "", _reaction(event, context)
        draft = actions.record_reaction_removed(user, name, item_type, channel, ts)
        if draft is not None:
            after_ack.submit(user, lambda: actions.refresh(draft))


def _reaction(event: dict[str, Any], context: BoltContext) -> tuple[str, str, str, str]:
    """(reaction, item type, channel, message ts) of a reaction event; the channel from the context."""
    item = event.get("item") or {}
    return event.get("reaction", ""), item.get("type", ""), context.channel_id or "", item.get("ts", "")

"""Sending a chosen draft into its ticket: the modal, its checks, and one comment per send.

Slack answers every interaction within 3 s, and a click's ``trigger_id`` opens a modal only within
3 s of the click, while Zendesk may take longer than that. So the work is split by what each step
may wait for:

1. The click (`open_modal`, in the listener's thread right after its ack): only the store and what
   is cached, then ``views.open``. Milliseconds, whatever Zendesk is doing.
2. After the ack (`check_ticket`): the ticket and the agent are read from Zendesk and the modal is
   updated: refused for a solved or closed ticket, a newer comment shown, the agent's name filled.
3. The submission (`submit`, before the ack, which carries field errors): the text is checked, and
   under the round's lock the send is recorded as *pending* before Zendesk is asked. A second send
   of a round the agent was not told about is answered with the modal again, asking to confirm.
4. After the ack (`deliver`): the comment is added and the outcome recorded; the draft's message
   says who sent it. Where the call failed in a way that may still have added it, the ticket's
   comments are read to find out, so an error never makes a second comment.
5. At start-up (`resolve_pending`): a send left pending by a killed process is looked up in the
   ticket's comments (its text's hash, its author, after its start) and marked sent or not sent.
   Nothing is ever re-sent on its own: at most one comment per send, and a lost one is shown as
   not sent, so the agent can send it again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.slack.blocks import draft_name
from bot.slack.draft_view import known_for_ticket, render_draft
from bot.slack.send_views import (
    CONFIRM_BLOCK,
    MAX_TEXT,
    ModalState,
    read_submission,
    refusal_modal,
    send_modal,
    sends_summary,
    text_hash,
)
from core.domain import (
    FINISHED_STATUSES,
    SEND_FAILED,
    SEND_PENDING,
    SEND_SENT,
    Agent,
    Comment,
    DraftRecord,
    SendRecord,
    Ticket,
    utcnow,
)
from core.placeholders import KnownValues, fill_placeholders, unresolved_placeholders
from core.ports import ChatError, ChatModals, ChatPoster, GatewayError, Store, TicketReplies
from core.ticket_text import contact_for_placeholders

log = logging.getLogger(__name__)

UNKNOWN_DRAFT = "This draft is not known to draftdesk any more."
TOO_LONG = (
    "Draft {label} is longer than Slack's {limit:,}-character text box, so it cannot be edited here: "
    "copy it from the thread into Zendesk."
)
CLOCK_SKEW = timedelta(minutes=2)  # a comment found for a pending send may carry Zendesk's clock


@dataclass(frozen=True)
class Sender:
    """Who sends: the Slack user, the name the text carries, and their Zendesk agent, if any."""

    slack_user: str
    name: str
    agent: Agent | None


@dataclass(frozen=True)
class OpenedModal:
    view_id: str
    view_hash: str
    user: str
    draft: DraftRecord
    state: ModalState
    text: str  # the text the modal offered
    restored: SendRecord | None = None  # the failed send whose edited text it offered


def normalized(text: str) -> str:
    """Whitespace-insensitive: Zendesk may trim or re-wrap what it stores."""
    return " ".join(text.split())


def body_hash(body: str) -> str:
    return hashlib.sha256(normalized(body).encode("utf-8")).hexdigest()


def attributed(text: str, sender: Sender) -> str:
    """The comment's text: as written when it goes out in the agent's name, else saying who sent it
    (only ever on an internal note: a public reply needs the agent's own Zendesk account)."""
    return text if sender.agent is not None else f"{text}\n\n(Sent from Slack by {sender.name})"


def newer_public_comment(ticket: Ticket, answered: Comment | None) -> Comment | None:
    """The newest public comment after the one the drafts answer; None if there is none."""
    if answered is None:
        return None
    newer = [
        c for c in ticket.comments if c.public and (c.created_at, c.id) > (answered.created_at, answered.id)
    ]
    return newer[-1] if newer else None


def restored_note(restored: SendRecord | None) -> str:
    if restored is None:
        return ""
    failed_at = restored.finished_at or restored.started_at
    return (
        f"This is your edited text from the send that failed at {failed_at:%H:%M} UTC; "
        "the draft as written is in the thread."
    )


def filled_to_fit(typed: str, known: KnownValues) -> str:
    """An agent's own text with the placeholders the ticket knows filled, unless filling would make
    it longer than the text box holds (it held the text as typed): then as typed, filled at Send."""
    filled = fill_placeholders(typed, known)
    return filled if len(filled) <= MAX_TEXT else typed


class SendFlow:
    """The send modal's steps; the Bolt listeners call one method per Slack interaction."""

    def __init__(
        self,
        store: Store,
        poster: ChatPoster,
        modals: ChatModals,
        zendesk: TicketReplies,
        allow_public: bool = False,
        clock: Callable[[], datetime] = utcnow,
        parent_status: Callable[[int], None] | None = None,
    ) -> None:
        """``parent_status(ticket_id)`` asks for the ticket's parent message to show it was answered
        (bot.slack.parent_status: done on a thread of its own, never holding up the agent)."""
        self.store = store
        self.poster = poster
        self.modals = modals
        self.zendesk = zendesk
        self.allow_public = allow_public
        self.clock = clock
        self.parent_status = parent_status
        self._senders: dict[str, Sender] = {}  # Slack user → who they are in Zendesk, once found
        self._round_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    # ---- 1. the click: local data only, then views.open ------------------------------------------

    def open_modal(
        self, trigger_id: str, user: str, channel: str, thread_ts: str | None, draft_id: str
    ) -> OpenedModal | None:
        """Opens the modal; None (and the agent told why) for a draft that cannot be sent."""
        draft = self.store.draft(draft_id)
        if draft is None or draft.text is None:
            self._tell(channel, user, UNKNOWN_DRAFT, thread_ts)
            return None
        sender = self._senders.get(user)
        known = known_for_ticket(self.store, draft.ticket_id, sender.name if sender else "")
        filled = filled_to_fit(draft.text, known)
        restored = self._failed_edit(draft, user)
        text = filled_to_fit(restored.edited_text or "", known) if restored else filled
        counting = self._counting_sends(draft.round_id)
        if len(text) > MAX_TEXT:
            self._tell(channel, user, TOO_LONG.format(label=draft.label, limit=MAX_TEXT), thread_ts)
            return None
        state = ModalState(
            draft.id,
            channel,
            thread_ts,
            text_hash(filled),  # "edited" is measured against the draft, restored text or not
            tuple(s.id for s in counting),
            restored=restored is not None,
        )
        note = f"Checking the ticket in Zendesk… {restored_note(restored)}".strip()
        view = self._modal(draft, state, text, note=note, public_chosen=bool(restored and restored.public))
        try:
            view_id, view_hash = self.modals.open_view(trigger_id, view)
        except ChatError as exc:
            log.warning("could not open the send modal for draft %s: %s", draft.id, exc)
            self._tell(channel, user, f"Could not open the send dialog: {exc}", thread_ts)
            return None
        return OpenedModal(view_id, view_hash, user, draft, state, text, restored)

    # ---- 2. after the ack: the ticket and the agent, then views.update ---------------------------

    def check_ticket(self, opened: OpenedModal) -> None:
        draft, state = opened.draft, opened.state
        note = ""
        newer: Comment | None = None
        ticket: Ticket | None = None
        try:
            ticket = self.zendesk.fetch_ticket(draft.ticket_id)
        except GatewayError as exc:
            note = f"Could not check the ticket in Zendesk ({exc}): it may have changed."
        sender = self.identify(opened.user)
        if ticket is not None:
            if ticket.status in FINISHED_STATUSES:
                reason = (
                    f"the ticket is {ticket.status}: a draft is not sent into it. Reopen it in Zendesk first."
                )
                self._update(opened, refusal_modal(draft.label, draft.ticket_id, reason))
                return
            self._remember_contact(ticket)
            newer = newer_public_comment(ticket, self._answered_comment(ticket, draft))
            public = [c for c in ticket.comments if c.public]
            state = replace(state, newest_seen=public[-1].id if public else None)
        if sender.agent is None:
            no_agent = "No Zendesk agent has your Slack e-mail: it goes in as the API user, with your name."
            note = f"{note} {no_agent}".strip()
        known = known_for_ticket(self.store, draft.ticket_id, sender.name)
        filled = fill_placeholders(draft.text or "", known)
        if len(filled) > MAX_TEXT:  # it fitted when the dialog opened, less filled: keep that
            filled = filled_to_fit(draft.text or "", known) if opened.restored else opened.text
        text = filled_to_fit(opened.restored.edited_text or "", known) if opened.restored else filled
        state = replace(state, shown_hash=text_hash(filled))  # "edited": against the draft, filled
        if text_hash(text) != text_hash(opened.text):  # refilled (the sign-off's name): a new text box
            state = replace(state, text_block=f"{state.text_block}_filled")
        requester = newer is not None and newer.by_customer
        note = f"{note} {restored_note(opened.restored)}".strip()
        view = self._modal(
            draft,
            state,
            text,
            note=note,
            newer=newer,
            newer_by_requester=requester,
            public_chosen=bool(opened.restored and opened.restored.public),
        )
        self._update(opened, view)

    def identify(self, user: str) -> Sender:
        """The Slack user's Zendesk agent (by e-mail), cached once found; the Slack name otherwise."""
        known = self._senders.get(user)
        if known is not None:
            return known
        try:
            profile = self.modals.user_profile(user)
        except ChatError as exc:
            log.warning("could not read Slack user %s: %s", user, exc)
            return Sender(user, user, None)
        agent = None
        if profile.email:
            try:
                agent = self.zendesk.agent_by_email(profile.email)
            except GatewayError as exc:
                log.warning("could not look up the Zendesk agent of %s: %s", user, exc)
                return Sender(user, profile.name, None)  # not cached: asked again next time
        else:
            log.warning("Slack gave no e-mail for %s: add the users:read.email scope to find agents", user)
        sender = Sender(user, agent.name if agent else profile.name, agent)
        with self._guard:
            self._senders[user] = sender
        return sender

    # ---- 3. the submission: checks, then a pending record, before the ack ----------------------------

    def submit(
        self, user: str, user_name: str, view: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, Callable[[], None] | None]:
        """(what the ack answers, the work to run after it). The answer is ``None`` (close the
        modal), field errors, or the modal again (a send the agent must confirm)."""
        state = ModalState.from_metadata(str(view.get("private_metadata") or ""))
        draft = self.store.draft(state.draft_id) if state else None
        if state is None or draft is None or draft.text is None:
            log.warning("a send modal for an unknown draft was submitted by %s", user)
            return None, None
        values = ((view.get("state") or {}).get("values")) or {}
        submission = read_submission(values, state.text_block)
        known = self._senders.get(user)
        sender = known or Sender(user, user_name or user, None)
        text = fill_placeholders(
            submission.text, known_for_ticket(self.store, draft.ticket_id, sender.name)
        ).strip()
        problem = self._text_problem(text, submission.public) or self._public_sender_problem(
            submission.public, known
        )
        if problem:
            return {"response_action": "errors", "errors": {state.text_block: problem}}, None
        with self._round_lock(draft.round_id):
            counting = self._counting_sends(draft.round_id)
            unseen = [s for s in counting if s.id not in state.known_sends]
            if unseen or (counting and not submission.confirmed_again):
                if not unseen:
                    return {
                        "response_action": "errors",
                        "errors": {CONFIRM_BLOCK: "Tick the box to send this round again, or cancel."},
                    }, None
                state = replace(state, known_sends=tuple(s.id for s in counting))
                again = self._modal(
                    draft,
                    state,
                    submission.text,
                    note="Someone sent this round meanwhile.",
                    public_chosen=submission.public,
                )
                return {"response_action": "update", "view": again}, None
            body = attributed(text, sender)
            edited = text_hash(submission.text) != state.shown_hash
            earlier = sum(1 for s in self.store.sends_for_round(draft.round_id) if s.draft_id == draft.id)
            send = SendRecord(
                id=f"{draft.id}s{earlier + 1}",
                ticket_id=draft.ticket_id,
                round_id=draft.round_id,
                draft_id=draft.id,
                user=user,
                state=SEND_PENDING,
                public=submission.public,
                edited=edited,
                body_sha256=body_hash(body),
                started_at=self.clock(),
                author_id=sender.agent.id if sender.agent else None,
                edited_text=submission.text if edited else None,  # as typed: refilled when reopened
            )
            self.store.record_send(send)  # before Zendesk is asked: a restart finds out what happened
        if known is not None:
            return None, lambda: self.deliver(send, body, state)
        written = submission.text
        return None, lambda: self._deliver_once_identified(send, written, body, state)

    def _deliver_once_identified(
        self, send: SendRecord, written: str, body: str, state: ModalState
    ) -> SendRecord:
        """A note submitted before the dialog's look-up of the agent finished goes out in the agent's
        name all the same: the look-up is finished here, after the ack, and the record updated first
        (the sign-off's ``<NAME>`` filled with the agent's name, not the Slack handle).
        No agent found: ``body`` as submitted, saying who sent it."""
        sender = self.identify(send.user)
        if sender.agent is not None:
            known = known_for_ticket(self.store, send.ticket_id, sender.name)
            body = fill_placeholders(written, known).strip()  # in the agent's own name: as written
            send = replace(send, author_id=sender.agent.id, body_sha256=body_hash(body))
            self.store.record_send(send)
        return self.deliver(send, body, state)

    @staticmethod
    def _public_sender_problem(public: bool, known: Sender | None) -> str:
        """A public reply goes out only in an agent's own name: the customer must never read
        "sent from Slack by …" or get a reply from the API user."""
        if not public or (known is not None and known.agent is not None):
            return ""
        if known is None:
            return (
                "Still looking you up in Zendesk: submit again in a moment, or send it as an internal note."
            )
        return (
            "Your Slack e-mail matches no Zendesk agent, so a public reply would come from the API user: "
            "send it as an internal note, or ask an admin to use the same e-mail in both."
        )

    def _text_problem(self, text: str, public: bool) -> str:
        if not text:
            return "The reply is empty: write it, or cancel."
        left = unresolved_placeholders(text)
        if left:
            return f"Replace {', '.join(left)} first: draftdesk cannot fill them from the ticket."
        if public and not self.allow_public:
            return (
                "Public replies are turned off ([zendesk] allow_public_replies): send it as an internal note."
            )
        return ""

    # ---- 4. after the ack: the Zendesk call and its outcome ------------------------------------------

    def deliver(self, send: SendRecord, body: str, state: ModalState) -> SendRecord:
        kind = "a public reply" if send.public else "an internal note"
        draft = self.store.draft(send.draft_id)
        label = send.draft_id[len(send.round_id) :]
        name, ticket_id = draft_name(label, draft.round_number if draft else 1), send.ticket_id
        try:
            ticket = self.zendesk.fetch_ticket(ticket_id)
        except GatewayError as exc:
            message = (
                f"Could not read ticket #{ticket_id} in Zendesk: {exc}. Nothing was added; send it again."
            )
            return self._not_sent(send, state, message)
        if ticket.status in FINISHED_STATUSES:
            message = (
                f"Ticket #{ticket_id} is {ticket.status}: {name} was not added. Reopen it in Zendesk first."
            )
            return self._not_sent(send, state, message)
        unseen = self._unseen_customer_comment(ticket, send, state)
        if unseen is not None:
            quoted = " ".join(unseen.body.split())[:200]
            message = (
                f'The customer wrote on ticket #{ticket_id} after you opened the dialog: "{quoted}". '
                f"{name} was not added: click Send again to see it, then decide."
            )
            return self._not_sent(send, state, message)
        try:
            comment_id = self.zendesk.add_comment(ticket_id, body, send.public, send.author_id)
        except GatewayError as exc:
            try:  # the comment may have been added before the error (a timeout, a 5xx after the write)
                comment_id = self.find_comment(send)
            except GatewayError:
                unsure = (
                    f"Zendesk did not confirm {name} ({exc}). Look at ticket #{ticket_id} before sending "
                    "again; draftdesk checks it itself at its next start."
                )
                self._tell(state.channel, send.user, unsure, state.thread_ts)
                return send
            if comment_id is None:
                message = f"Could not add {name} in Zendesk: {exc}. Nothing was added; send it again."
                return self._not_sent(send, state, message)
        finished = self._finish(send, SEND_SENT, comment_id=comment_id)
        self._tell(
            state.channel, send.user, f"{name} was added to ticket #{ticket_id} as {kind}.", state.thread_ts
        )
        return finished

    def find_comment(self, send: SendRecord) -> int | None:
        """The id of the comment this send added, if Zendesk has it (raises GatewayError)."""
        ticket = self.zendesk.fetch_ticket(send.ticket_id)
        for comment in ticket.comments:
            if (
                comment.created_at >= send.started_at - CLOCK_SKEW
                and comment.public == send.public
                and (send.author_id is None or comment.author_id == send.author_id)
                and body_hash(comment.body) == send.body_sha256
            ):
                return comment.id
        return None

    # ---- 5. start-up: sends a killed process left pending ---------------------------------------------

    def resolve_pending(self) -> int:
        """Marks each pending send sent or not sent, as the ticket's comments say; how many."""
        resolved = 0
        for send in self.store.pending_sends():
            try:
                comment_id = self.find_comment(send)
            except GatewayError as exc:
                log.warning("send %s is still unresolved: %s", send.id, exc)
                continue
            if comment_id is None:
                self._finish(send, SEND_FAILED, error="not found in the ticket after a restart")
            else:
                self._finish(send, SEND_SENT, comment_id=comment_id)
            log.info(
                "send %s of ticket %s resolved after a restart: %s",
                send.id,
                send.ticket_id,
                "sent" if comment_id else "not sent",
            )
            resolved += 1
        return resolved

    # ---- helpers ------------------------------------------------------------------------------------------

    def _finish(
        self, send: SendRecord, state: str, comment_id: int | None = None, error: str | None = None
    ) -> SendRecord:
        finished = replace(send, state=state, comment_id=comment_id, error=error, finished_at=self.clock())
        if state == SEND_SENT:
            finished = replace(finished, edited_text=None)  # in Zendesk now: no copy kept here
        self.store.record_send(finished)
        if state == SEND_SENT:
            self.store.mark_sent(send.draft_id, send.user)
            self._refresh(send.draft_id)
            if self.parent_status is not None:
                self.parent_status(send.ticket_id)
        return finished

    def _not_sent(self, send: SendRecord, state: ModalState, message: str) -> SendRecord:
        finished = self._finish(send, SEND_FAILED, error=message)
        kept = " Your edits are kept: Send to Zendesk opens them again." if send.edited_text else ""
        self._tell(state.channel, send.user, message + kept, state.thread_ts)
        return finished

    def _failed_edit(self, draft: DraftRecord, user: str) -> SendRecord | None:
        """The agent's last send of the draft, if it failed with text they had edited."""
        mine = [
            s for s in self.store.sends_for_round(draft.round_id) if s.draft_id == draft.id and s.user == user
        ]
        last = mine[-1] if mine else None
        return last if last is not None and last.state == SEND_FAILED and last.edited_text else None

    def _refresh(self, draft_id: str) -> None:
        draft = self.store.draft(draft_id)
        if draft is None or not draft.channel or not draft.vote_ts or draft.text is None:
            return
        text, blocks = render_draft(self.store, draft)[-1]
        try:
            self.poster.update(draft.channel, draft.vote_ts, text, blocks)
        except ChatError as exc:
            log.warning("could not update the message of draft %s: %s", draft_id, exc)

    def _modal(
        self,
        draft: DraftRecord,
        state: ModalState,
        text: str,
        note: str = "",
        newer: Comment | None = None,
        newer_by_requester: bool = False,
        public_chosen: bool = False,
    ) -> dict[str, Any]:
        counting = [s for s in self._counting_sends(draft.round_id) if s.id in state.known_sends]
        labels = {d.id: d.label for d in self.store.drafts_for_round(draft.round_id)} if counting else {}
        return send_modal(
            label=draft.label,
            ticket_id=draft.ticket_id,
            state=state,
            text=text,
            allow_public=self.allow_public,
            earlier_sends=sends_summary(draft.label, counting, labels),
            newer_comment=newer,
            newer_by_requester=newer_by_requester,
            # What Send cannot fill: it fills from the ticket and always has a sender's name to sign
            # with (a text shown as typed, too long to fill here, still gets both at Send).
            unresolved=unresolved_placeholders(
                fill_placeholders(text, known_for_ticket(self.store, draft.ticket_id, agent_name="sender"))
            ),
            note=note,
            public_chosen=public_chosen and self.allow_public,
        )

    def _update(self, opened: OpenedModal, view: dict[str, Any]) -> None:
        try:
            self.modals.update_view(opened.view_id, view, opened.view_hash)
        except ChatError as exc:  # submitted or closed meanwhile: nothing left to update
            log.info("did not update the send modal of draft %s: %s", opened.draft.id, exc)

    def _counting_sends(self, round_id: str) -> list[SendRecord]:
        return [s for s in self.store.sends_for_round(round_id) if s.counts]

    def _unseen_customer_comment(self, ticket: Ticket, send: SendRecord, state: ModalState) -> Comment | None:
        """A customer comment newer than the one the draft answers that the dialog did not show."""
        draft = self.store.draft(send.draft_id)
        answered = self._answered_comment(ticket, draft) if draft is not None else None
        if answered is None:
            return None
        public = [c for c in ticket.comments if c.public]
        seen_at = next((i for i, c in enumerate(public) if c.id == state.newest_seen), None)
        if seen_at is None:  # the dialog showed nothing newer: the answered comment was the last seen
            seen_at = next((i for i, c in enumerate(public) if c.id == answered.id), len(public) - 1)
        return next((c for c in reversed(public[seen_at + 1 :]) if c.by_customer), None)

    def _answered_comment(self, ticket: Ticket, draft: DraftRecord) -> Comment | None:
        """The customer message the draft's round answers."""
        for comment in ticket.comments:
            round_ = self.store.round_for(ticket.id, comment.id)
            if round_ is not None and round_.id == draft.round_id:
                return comment
        return None

    def _remember_contact(self, ticket: Ticket) -> None:
        contact = contact_for_placeholders(ticket)
        if self.store.ticket_contact(ticket.id) != contact:
            self.store.save_ticket_contact(ticket.id, *contact)

    def _round_lock(self, round_id: str) -> threading.Lock:
        with self._guard:
            return self._round_locks.setdefault(round_id, threading.Lock())

    def _tell(self, channel: str, user: str, text: str, thread_ts: str | None) -> None:
        try:
            self.poster.ephemeral(channel, user, text, thread_ts)
        except ChatError as exc:
            log.warning("could not answer %s in %s: %s", user, channel, exc)

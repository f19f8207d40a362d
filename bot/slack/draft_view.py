"""A draft's thread message as agents see it now: the requester's placeholders filled, the votes
counted, the sends noted. Shared by the worker's first post and every later re-render."""

from __future__ import annotations

from bot.slack.blocks import Message, draft_message
from bot.slack.send_views import sent_note
from core.domain import SEND_SENT, DraftRecord
from core.placeholders import KnownValues, fill_placeholders
from core.ports import Store


def known_for_ticket(store: Store, ticket_id: int, agent_name: str = "") -> KnownValues:
    """What the store knows to fill a draft of this ticket with (its requester, saved when drafted)."""
    name, email = store.ticket_contact(ticket_id) or ("", "")
    return KnownValues(requester_name=name, requester_email=email, agent_name=agent_name)


def render_draft(store: Store, draft: DraftRecord) -> list[Message]:
    """The draft's message(s) with the current rating count and the sends of this draft."""
    text = fill_placeholders(draft.text or "", known_for_ticket(store, draft.ticket_id))
    sends = [
        s for s in store.sends_for_round(draft.round_id) if s.draft_id == draft.id and s.state == SEND_SENT
    ]
    return draft_message(
        draft.label, text, draft.id, rated_count=store.rated_count(draft.id), sent_note=sent_note(sends)
    )

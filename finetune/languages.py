"""The customer's language of an exported ticket, decided once per ticket as the bot decides it per
round (`integrations.language_detector.TicketLanguages`): the subject and the first message from
the customer's side, else the requester's Zendesk locale, else ``[languages] default``.

`finetune export` writes it into each ``tickets/{id}.json``; `prepare` reads it from there (an
export made before languages were is decided on the spot, from the same text and users.jsonl)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.language_detector import TicketLanguages

CUSTOMER_ROLES = frozenset({"requester", "end-user"})


def customer_text(subject: str, comments: list[dict[str, Any]]) -> str:
    """The subject and the first public message from the customer's side (what a first round reads)."""
    ordered = sorted(comments, key=lambda c: (c.get("created_at") or "", c.get("id") or 0))
    first = next(
        (c for c in ordered if c.get("public", True) and c.get("role") in CUSTOMER_ROLES),
        None,
    )
    return f"{subject}\n{(first or {}).get('body') or ''}"


def ticket_language(data: Mapping[str, Any], locales: Mapping[int, str], languages: TicketLanguages) -> str:
    """The language of an exported ticket (``{"ticket": …, "comments": …}``): recorded at export, or
    decided now. ``locales``: user id → Zendesk locale (users.jsonl)."""
    recorded = data.get("language")
    if isinstance(recorded, str) and recorded:
        return recorded
    ticket = data["ticket"]
    text = customer_text(ticket.get("subject") or "", list(data.get("comments") or []))
    return languages.of_text(text, locales.get(int(ticket.get("requester_id") or 0))).language

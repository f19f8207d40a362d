"""A ticket as the models read it, the same in training and when drafting. Pure: no I/O.

`finetune prepare` trains on comments with quoted mail and signatures cut (`core.cleaning`) and
personal data replaced by placeholders (`core.pii`). A model fine-tuned on that text and then given
the raw ticket meets sign-offs, quoted threads and real names and addresses it never saw in
training, and drafts worse for it (measured on the demo's held-out tickets: the share of drafts
close to the real answer fell from 13 to 7-8 of 22). So the bot drafts from the ticket cleaned by
the same function that `prepare` uses per comment. The drafts' placeholders (``<NAME>``) are
filled from the ticket before an agent sees them (`core.placeholders`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from core.cleaning import clean_comment
from core.domain import Comment, Ticket
from core.pii import NO_PUBLIC_CONTACTS, PublicContacts, Redaction, Redactor, email_addresses


def model_text(body: str, redactor: Redactor) -> Redaction:
    """One comment as a model reads it: quoted mail and signature cut, personal data replaced
    ("" when nothing is left, e.g. a message that only quotes an earlier one)."""
    return redactor.redact(clean_comment(body))


# A comment longer than this is cut to its beginning and end before the cleaning: redacting a
# megabyte takes seconds, and no model's prompt holds more than a few thousand tokens of it anyway
# (`core.prompt.build_prompt` keeps a long message's beginning and end too).
MAX_COMMENT_CHARS = 24_000


def ticket_as_models_read_it(
    ticket: Ticket, known_names: Iterable[str] = (), public: PublicContacts = NO_PUBLIC_CONTACTS
) -> Ticket:
    """``ticket`` with its subject and public comments as `finetune prepare` trains on them.

    Each public comment is `model_text`; the names of everyone who commented (and ``known_names``)
    count as names, ``public`` (the Help Center's own addresses and numbers) stays. As in
    training, a comment whose author Zendesk no longer knows is left out, and so is a comment the
    cleaning empties (a reply that only quotes mail), except the message the drafts answer: that
    one keeps its whole text, redacted, so it is never lost.
    """
    redactor = Redactor([ticket.requester_name, *ticket.author_names, *known_names], public)
    question = question_comment(ticket)
    comments = []
    for comment in ticket.comments:
        if comment.public:
            gone = comment.author_role == "unknown" and not comment.author_is_requester
            if gone and comment is not question:
                continue
            kept = _kept_text(comment.body, whole_if_empty=comment is question)
            if not kept:
                continue
            comment = replace(comment, body=redactor.redact(kept).text)
        comments.append(comment)
    return replace(ticket, subject=redactor.redact(ticket.subject).text, comments=tuple(comments))


def question_comment(ticket: Ticket) -> Comment | None:
    """The message drafts answer: the customer side's newest public comment (the requester's or a
    CC'd end user's), else the first public one (an agent may open a ticket on a customer's behalf,
    so that is the question until the customer writes)."""
    latest = ticket.latest_customer_comment
    if latest is not None:
        return latest
    return next((c for c in ticket.comments if c.public), None)


def contact_for_placeholders(ticket: Ticket) -> tuple[str, str]:
    """The (name, e-mail) a draft's ``<NAME>`` and ``<EMAIL>`` are filled with.

    The models' copy turns every address into ``<EMAIL>``; when the ticket also holds an address
    other than the requester's ("send the invoice to billing@…"), a draft's ``<EMAIL>`` may mean
    that one, so it is left unfilled (""): highlighted, and the send dialog asks for it.
    """
    own = ticket.requester_email.strip().lower()
    texts = [ticket.subject, *(_kept_text(c.body) for c in ticket.comments if c.public)]  # not quoted mail
    others = {address.lower() for text in texts for address in email_addresses(text)} - {own}
    return ticket.requester_name, "" if others else ticket.requester_email


def _kept_text(body: str, whole_if_empty: bool = True) -> str:
    """What of a comment the models read, before redaction: `clean_comment`'s text, or when the
    cleaning leaves nothing, the whole (shortened) comment if ``whole_if_empty``, else ""."""
    if len(body) > MAX_COMMENT_CHARS:
        head = MAX_COMMENT_CHARS * 2 // 3
        body = body[:head] + "\n[…]\n" + body[-(MAX_COMMENT_CHARS - head) :]
    return clean_comment(body) or (body if whole_if_empty else "")

"""`core.ticket_text`: the ticket as models read it, the same function for training and drafting."""

from __future__ import annotations

from datetime import UTC, datetime

from core.domain import Comment, Ticket
from core.pii import Redactor
from core.ticket_text import MAX_COMMENT_CHARS, contact_for_placeholders, model_text, ticket_as_models_read_it

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def test_a_comment_loses_its_quote_signature_and_personal_data() -> None:
    body = "Restore fails on 192.168.1.20.\n\nBest regards,\nAiko Tanaka\n\nOn Mon, Tom wrote:\n> old"
    redaction = model_text(body, Redactor(["Aiko Tanaka"]))
    assert redaction.text == "Restore fails on <IP>."
    assert redaction.counts["IP"] == 1


def test_internal_notes_stay_and_a_message_that_only_quotes_keeps_its_text() -> None:
    only_quote = "On Mon, 3 Mar 2025 at 10:00, Aiko Tanaka <aiko@example.com> wrote:\n> Still stuck."
    ticket = Ticket(
        5,
        "Aiko's backup",
        "open",
        7,
        "Aiko Tanaka",
        T0,
        "u",
        (
            Comment(1, 9, "Card 4242 4242 4242 4242 on file, Aiko is a VIP", False, T0, False),
            Comment(2, 7, only_quote, True, T0, True),
        ),
    )
    read = ticket_as_models_read_it(ticket)
    assert read.subject == "<NAME>'s backup"
    assert read.comments[0] == ticket.comments[0]  # never in a prompt; left as it is
    assert read.comments[1].body.endswith("> Still stuck.") and "Aiko" not in read.comments[1].body
    assert "<EMAIL>" in read.comments[1].body
    assert read.requester_name == "Aiko Tanaka"  # the drafts' <NAME> is filled from it


def test_comments_training_leaves_out_are_left_out_and_every_authors_name_is_redacted() -> None:
    quote_only = "On Mon, 3 Mar 2025 at 10:00, Tom Berger <tom@parcelo.example> wrote:\n> Send the log."
    comments = (
        Comment(1, 7, "Restore fails.", True, T0, True),
        Comment(2, 8, "Send the log, please. Tom", True, T0, False, author_role="agent"),
        Comment(3, 7, quote_only, True, T0, True),  # a reply that only quotes: empty once cleaned
        Comment(4, 666, "Automatic reply: received.", True, T0, False, author_role="unknown"),
        Comment(5, 9, "Log attached, Aiko asked me to send it. Lin", True, T0, False, author_role="end-user"),
    )
    ticket = Ticket(
        5, "Restore", "open", 7, "Aiko Tanaka", T0, "u", comments, author_names=("Tom Berger", "Lin Wei")
    )
    read = ticket_as_models_read_it(ticket)
    assert [(c.id, c.body) for c in read.comments] == [
        (1, "Restore fails."),
        (2, "Send the log, please. <NAME>"),
        (5, "Log attached, <NAME> asked me to send it. <NAME>"),
    ]
    assert read.latest_customer_comment == read.comments[2]  # the CC'd colleague's message is answered


def test_a_huge_comment_is_cut_to_its_beginning_and_end_before_the_cleaning() -> None:
    log_lines = "".join(
        f"12:00:{i % 60:02d} copying block {i} from 10.0.0.{i % 250}\n" for i in range(20_000)
    )
    body = "My backup fails with this log:\n" + log_lines + "What should I do?"
    assert len(body) > 30 * MAX_COMMENT_CHARS
    ticket = Ticket(
        5, "Backup fails", "open", 7, "Aiko Tanaka", T0, "u", (Comment(1, 7, body, True, T0, True),)
    )
    read = ticket_as_models_read_it(ticket).comments[0].body
    assert read.startswith("My backup fails with this log:") and read.endswith("What should I do?")
    assert "[…]" in read and "<IP>" in read and "10.0.0." not in read
    assert len(read) <= MAX_COMMENT_CHARS + 10


def test_email_placeholders_are_filled_only_when_the_requesters_address_is_the_only_one() -> None:
    def ticket_saying(body: str) -> Ticket:
        comment = Comment(1, 7, body, True, T0, True)
        return Ticket(5, "Invoice", "open", 7, "Aiko Tanaka", T0, "u", (comment,), "aiko@example.com")

    assert contact_for_placeholders(ticket_saying("My address is Aiko@Example.com.")) == (
        "Aiko Tanaka",
        "aiko@example.com",
    )
    # Both addresses reach the models as <EMAIL>: a draft's <EMAIL> may mean either, so the agent fills it.
    other = ticket_saying("Please send the invoice to billing@company.example, not to aiko@example.com.")
    assert contact_for_placeholders(other) == ("Aiko Tanaka", "")
    assert ticket_as_models_read_it(other).comments[0].body.count("<EMAIL>") == 2
    # An address only in quoted mail never reaches the models: it does not count.
    quoted = ticket_saying("Send it to aiko@example.com.\n\nOn Mon, Tom <tom@acme.example> wrote:\n> Which?")
    assert contact_for_placeholders(quoted) == ("Aiko Tanaka", "aiko@example.com")


def test_a_requester_whose_user_record_is_gone_keeps_every_comment_as_in_training() -> None:
    """Training labels the requester's comments by id; Zendesk may no longer know the user."""
    comments = (
        Comment(1, 7, "Restore fails.", True, T0, True, author_role="unknown"),
        Comment(2, 8, "Which version?", True, T0, False, author_role="agent"),
        Comment(3, 7, "Version 4.2.", True, T0, True, author_role="unknown"),
    )
    ticket = Ticket(5, "Restore", "open", 7, "", T0, "u", comments)
    read = ticket_as_models_read_it(ticket)
    assert [c.body for c in read.comments] == ["Restore fails.", "Which version?", "Version 4.2."]

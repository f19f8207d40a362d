"""Prompt building: roles, order, internal notes, and fitting the token budget."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from core.domain import Comment, Ticket
from core.prompt import AGENT, STOP_SEQUENCES, TRUNCATION_MARKER, build_prompt, prompt_sources

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
REQUESTER = 100
AGENT_ID = 7


def words(text: str) -> int:
    """A simple token counter: whitespace-separated words."""
    return len(text.split())


def comment(n: int, body: str, *, customer: bool = True, public: bool = True) -> Comment:
    return Comment(
        id=n,
        author_id=REQUESTER if customer else AGENT_ID,
        body=body,
        public=public,
        created_at=T0 + timedelta(minutes=n),
        author_is_requester=customer,
    )


def ticket(*comments: Comment, subject: str = "Cannot log in") -> Ticket:
    return Ticket(
        id=42,
        subject=subject,
        status="open",
        requester_id=REQUESTER,
        requester_name="Maria Lopez",
        created_at=T0,
        url="https://example.zendesk.com/agent/tickets/42",
        comments=tuple(comments),
    )


CONVERSATION = ticket(
    comment(1, "Hi, I can't log in since this morning."),
    comment(2, "Customer says she uses SSO. Check Okta logs.", customer=False, public=False),
    comment(3, "Have you tried resetting your password?", customer=False),
    comment(4, "Yes, but the reset link never arrives."),
)


def test_roles_order_and_ending() -> None:
    prompt = build_prompt(CONVERSATION, words, 1000, product_name="Parcelo")
    assert "support agent for Parcelo" in prompt
    assert "Subject: Cannot log in" in prompt
    first = prompt.index("Customer: Hi, I can't log in since this morning.")
    second = prompt.index("Agent: Have you tried resetting your password?")
    third = prompt.index("Customer: Yes, but the reset link never arrives.")
    assert first < second < third
    assert prompt.endswith("\n\n" + AGENT)
    # The draft should end before a next turn: the stop strings are the role labels on a new line.
    assert all(stop.startswith("\n") for stop in STOP_SEQUENCES)


def test_internal_notes_never_appear() -> None:
    prompt = build_prompt(CONVERSATION, words, 1000)
    assert "Okta" not in prompt
    assert "SSO" not in prompt
    # Not even when the note is the newest comment.
    late_note = ticket(
        *CONVERSATION.comments, comment(5, "VIP account, escalate", customer=False, public=False)
    )
    assert "VIP" not in build_prompt(late_note, words, 1000)


def test_truncation_drops_oldest_and_keeps_newest_customer_message() -> None:
    old = [comment(i, f"old message number {i} " + "filler " * 30, customer=i % 2 == 0) for i in range(1, 9)]
    newest = comment(20, "Where is my parcel 123? It was due on Friday.")
    after = comment(21, "Checking with the carrier now.", customer=False)
    full = ticket(*old, newest, after)
    budget = words(build_prompt(full, words, 10_000)) - 70  # room for all but about two old comments
    prompt = build_prompt(full, words, budget)
    assert words(prompt) <= budget
    assert "Subject: Cannot log in" in prompt
    assert newest.body in prompt
    assert after.body in prompt  # newer than the anchor: dropped last
    assert "old message number 1 " not in prompt  # oldest went first
    assert "old message number 8 " in prompt  # the newest old ones stayed


def test_too_long_customer_message_keeps_beginning_and_end() -> None:
    body = "START " + " ".join(f"w{i}" for i in range(5000)) + " END"
    prompt = build_prompt(ticket(comment(1, "earlier message"), comment(2, body)), words, 300)
    assert words(prompt) <= 300
    assert TRUNCATION_MARKER in prompt
    assert "Customer: START w0" in prompt
    assert "w4999 END" in prompt
    assert "earlier message" not in prompt
    assert words(prompt) >= 290  # the budget is used, not thrown away


def test_budget_too_small_for_the_instruction_raises() -> None:
    with pytest.raises(ValueError, match="too small"):
        build_prompt(CONVERSATION, words, 10)


def test_ticket_without_customer_comment() -> None:
    only_agent = ticket(comment(1, "We noticed a failed payment on your account.", customer=False))
    prompt = build_prompt(only_agent, words, 1000)
    assert "Agent: We noticed a failed payment" in prompt
    assert prompt.endswith(AGENT)
    assert build_prompt(ticket(), words, 1000).endswith("Subject: Cannot log in\n\n" + AGENT)


def test_prompt_never_exceeds_budget_random_sizes() -> None:
    rng = random.Random(1234)
    vocabulary = ["refund", "parcel", "label", "printer", "invoice", "login", "please", "thanks", "why"]
    for _ in range(300):
        comments = []
        for n in range(rng.randint(0, 12)):
            size = rng.choice([0, 1, 5, 40, 300, 3000])
            text = " ".join(rng.choice(vocabulary) for _ in range(size))
            comments.append(comment(n, text, customer=rng.random() < 0.6, public=rng.random() < 0.85))
        case = ticket(*comments, subject=" ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 20))))
        # The smallest prompt: instruction, subject and a one-word message (or "[…]").
        minimum = words(build_prompt(ticket(comment(1, "x"), subject=case.subject), words, 10_000))
        budget = rng.randint(minimum, 4000)
        prompt = build_prompt(case, words, budget)
        assert words(prompt) <= budget
        assert prompt.endswith(AGENT)
        latest = case.latest_customer_comment
        if latest is not None and latest.body:
            first_word = latest.body.split()[0]
            assert f"Customer: {first_word}" in prompt


def test_one_megabyte_body_fits() -> None:
    # Runs in milliseconds: counts tokens a few dozen times, never once per character.
    body = ("The label printer prints blank pages again. " * 24_000)[:1_000_000]
    case = ticket(comment(1, "Hello"), comment(2, "Which model?", customer=False), comment(3, body))
    prompt = build_prompt(case, words, 2000)
    assert 1900 < words(prompt) <= 2000
    assert TRUNCATION_MARKER in prompt
    assert "Customer: The label printer prints blank pages again." in prompt


def test_a_grounded_prompt_gives_back_its_passages_to_build_it_again_shorter() -> None:
    question = ticket(
        comment(1, "Old question. " * 30), comment(2, "Reply.", customer=False), comment(3, "Stuck.")
    )
    passages = ["Backups stuck at 99%:   close Outlook.", "Restores\nkeep 30 days."]
    prompt = build_prompt(question, words, 500, sources=passages)
    assert prompt_sources(prompt) == ("Backups stuck at 99%: close Outlook.", "Restores keep 30 days.")
    assert prompt_sources(build_prompt(question, words, 500)) == ()
    shorter = build_prompt(question, words, 80, sources=prompt_sources(prompt))
    assert "Old question" not in shorter and shorter.endswith("Customer: Stuck.\n\nAgent:")
    assert shorter.split("\n\nSubject: ")[0] == prompt.split("\n\nSubject: ")[0]  # the passages kept

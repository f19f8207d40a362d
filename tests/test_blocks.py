"""Block Kit payloads: escaping, Slack's size limits, long-draft splitting, blind labels."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime

import pytest

from bot.slack.blocks import (
    BUTTON_TEXT_LIMIT,
    BUTTON_VALUE_LIMIT,
    HEADER_TEXT_LIMIT,
    MAX_BLOCKS,
    MAX_MESSAGE_TEXT,
    SCORE_REACTIONS,
    SECTION_TEXT_LIMIT,
    block_text_length,
    draft_message,
    escape_mrkdwn,
    iter_block_texts,
    model_failure_notice,
    new_round_notice,
    score_from_action_id,
    split_text,
    ticket_parent_message,
    truncate_escaped,
    unescape_mrkdwn,
)
from core.domain import Ticket

DRAFT_ID = "t123-r1-A-5f0c"


def make_ticket(**overrides: object) -> Ticket:
    fields: dict = {
        "id": 123,
        "subject": "Refund <!channel> & <http://evil.example|click here>",
        "status": "new",
        "requester_id": 42,
        "requester_name": "Ada <@U999> Lovelace",
        "created_at": datetime(2024, 5, 1, tzinfo=UTC),
        "url": "https://acme.zendesk.com/agent/tickets/123",
    }
    fields.update(overrides)
    return Ticket(**fields)


def all_text(blocks: list[dict]) -> str:
    return "\n".join(iter_block_texts(blocks))


def check_limits(blocks: list[dict]) -> None:
    """The Block Kit limits draftdesk relies on, for one message."""
    assert 0 < len(blocks) <= MAX_BLOCKS
    block_ids = [b["block_id"] for b in blocks]
    assert len(block_ids) == len(set(block_ids)), block_ids
    assert block_text_length(blocks) <= MAX_MESSAGE_TEXT
    assert len(json.dumps(blocks)) < 20_000
    for block in blocks:
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= SECTION_TEXT_LIMIT
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_TEXT_LIMIT
        if block["type"] == "actions":
            action_ids = [e["action_id"] for e in block["elements"]]
            assert len(action_ids) == len(set(action_ids))
            for element in block["elements"]:
                assert len(element["text"]["text"]) <= BUTTON_TEXT_LIMIT
                assert len(element["value"]) <= BUTTON_VALUE_LIMIT


def draft_body(messages: list[tuple[str, list[dict]]]) -> list[str]:
    """The escaped draft text chunks, in order, from the section blocks of all messages."""
    return [
        b["text"]["text"]
        for _, blocks in messages
        for b in blocks
        if b["type"] == "section" and b["block_id"].startswith("draft_text_")
    ]


def assert_rejoins(chunks: list[str], original: str) -> None:
    """Chunks are the original text in order, except whitespace dropped at the split points."""
    pos = 0
    for chunk in chunks:
        while pos < len(original) and original[pos].isspace():
            pos += 1
        assert original.startswith(chunk, pos), (pos, chunk[:40], original[pos : pos + 40])
        pos += len(chunk)
    assert original[pos:].strip() == ""


# ------------------------------------------------------------------------------ escaping


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<!channel> now", "&lt;!channel&gt; now"),
        ("<!here>", "&lt;!here&gt;"),
        ("hi <@U123>", "hi &lt;@U123&gt;"),
        ("<http://x|y>", "&lt;http://x|y&gt;"),
        ("Q&A", "Q&amp;A"),
        ("&lt; already", "&amp;lt; already"),
        ("plain *bold* text", "plain *bold* text"),
    ],
)
def test_escape_mrkdwn(raw: str, escaped: str) -> None:
    assert escape_mrkdwn(raw) == escaped
    assert unescape_mrkdwn(escaped) == raw


def test_escaped_text_has_no_control_characters() -> None:
    escaped = escape_mrkdwn("<!channel> <@U1> <#C1> <!subteam^S1> <http://e|x> & &amp;")
    assert "<" not in escaped and ">" not in escaped
    assert re.sub(r"&(amp|lt|gt);", "", escaped).count("&") == 0


def test_truncate_escaped_never_cuts_an_entity() -> None:
    text = escape_mrkdwn("&" * 100)
    for limit in range(2, 40):
        out = truncate_escaped(text, limit)
        assert len(out) <= limit
        assert re.fullmatch(r"(&amp;)*…", out), out


# ------------------------------------------------------------------------------ parent message


def test_parent_message_links_ticket_and_escapes_subject() -> None:
    fallback, blocks = ticket_parent_message(make_ticket())
    text = all_text(blocks)
    assert "<https://acme.zendesk.com/agent/tickets/123|#123>" in text
    assert "Refund &lt;!channel&gt; &amp; &lt;http://evil.example|click here&gt;" in text
    assert "<!channel>" not in text and "<http://evil" not in text
    assert "Ada" in text and "Lovelace" not in text  # first name only
    assert "&lt;@U999" not in text  # the first name is "Ada"
    assert "new" in text
    assert "#123" in fallback and "<!channel>" not in fallback
    check_limits(blocks)


def test_parent_message_escapes_requester_name() -> None:
    _, blocks = ticket_parent_message(make_ticket(requester_name="<!channel> Smith"))
    text = all_text(blocks)
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text


def test_parent_message_truncates_long_subject() -> None:
    fallback, blocks = ticket_parent_message(make_ticket(subject="<&>" * 5000))
    check_limits(blocks)
    assert "…" in all_text(blocks)
    assert len(fallback) < 400


# ------------------------------------------------------------------------------ drafts


def test_short_draft_is_one_message_with_controls() -> None:
    messages = draft_message("A", "Hi Ada,\n\nYour refund is on its way.", DRAFT_ID, rated_count=0)
    assert len(messages) == 1
    fallback, blocks = messages[0]
    check_limits(blocks)
    assert blocks[0]["type"] == "header" and blocks[0]["text"]["text"] == "Draft A"
    assert fallback.startswith("Draft A")
    actions = [b for b in blocks if b["type"] == "actions"]
    assert len(actions) == 1
    elements = actions[0]["elements"]
    assert [e["action_id"] for e in elements] == [
        "rate_1",
        "rate_2",
        "rate_3",
        "rate_4",
        "rate_5",
        "send_to_zendesk",
    ]
    assert [e["text"]["text"] for e in elements[:5]] == ["1", "2", "3", "4", "5"]
    assert all(e["value"] == DRAFT_ID for e in elements)
    send = elements[5]
    assert send["style"] == "primary" and "confirm" not in send  # the modal it opens confirms
    assert "Not rated yet" in all_text(blocks)
    assert "Sent by" not in all_text(blocks)


@pytest.mark.parametrize(("count", "expected"), [(1, "Rated by 1 agent"), (3, "Rated by 3 agents")])
def test_rated_count_and_sent_note(count: int, expected: str) -> None:
    note = "Sent by <@U1> as an internal note (edited)"
    [(_, blocks)] = draft_message("B", "text", DRAFT_ID, rated_count=count, sent_note=note)
    context = [b for b in blocks if b["type"] == "context"]
    texts = [e["text"] for e in context[0]["elements"]]
    assert texts[0] == expected
    assert texts[1] == f":white_check_mark: {note}"


def test_placeholders_left_in_a_draft_are_highlighted() -> None:
    [(_, blocks)] = draft_message("A", "Call <PHONE> or write to <EMAIL>. <b>x</b>", DRAFT_ID, 0)
    text = all_text(blocks)
    assert "`&lt;PHONE&gt;`" in text and "`&lt;EMAIL&gt;`" in text
    assert "&lt;b&gt;x" in text and "`&lt;b&gt;" not in text  # other angle brackets stay plain


def test_draft_text_is_escaped_and_verbatim() -> None:
    [(fallback, blocks)] = draft_message("A", "Dear <!here>, see <http://evil|bank> & co", DRAFT_ID, 0)
    text = all_text(blocks)
    assert "&lt;!here&gt;" in text and "&lt;http://evil|bank&gt;" in text and "&amp; co" in text
    assert "<!here>" not in text + fallback
    sections = [b for b in blocks if b["type"] == "section"]
    assert all(s["text"]["verbatim"] is True for s in sections)


def test_model_name_never_appears() -> None:
    model = "llama-3.1-8b-support-ft"
    messages = draft_message("C", "A helpful answer.", "t1-r1-C", rated_count=2, sent_note="Sent by <@U1>")
    dumped = json.dumps(messages)
    assert model not in dumped and "llama" not in dumped.lower()
    notice = json.dumps(model_failure_notice(1, 3))
    assert "llama" not in notice.lower()


def test_one_megabyte_draft_splits_within_limits() -> None:
    rng = random.Random(7)
    words = ["refund", "order", "<!channel>", "&", "Q&A", "<@U1>", "shipping.", "thanks!", "a" * 40]
    paragraphs = []
    size = 0
    while size < 1_000_000:
        sentence_count = rng.randint(1, 30)
        paragraph = " ".join(rng.choice(words) for _ in range(sentence_count * 8))
        if rng.random() < 0.1:
            paragraph += "\n" + "x&" * rng.randint(100, 4000)  # long runs without spaces
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    text = "\n\n".join(paragraphs)

    messages = draft_message("A", text, DRAFT_ID, rated_count=4)
    assert len(messages) > 1
    total = len(messages)
    for number, (fallback, blocks) in enumerate(messages, start=1):
        check_limits(blocks)
        assert fallback and "<!channel>" not in fallback
        header = blocks[0]["text"]["text"]
        assert header == ("Draft A" if number == 1 else f"Draft A (continued {number}/{total})")
        has_controls = any(b["type"] == "actions" for b in blocks)
        assert has_controls == (number == total)

    chunks = draft_body(messages)
    for chunk in chunks:
        # no entity cut in half at either end of a section
        assert not re.search(r"&[a-z]{0,3}$", chunk), chunk[-10:]
        assert not re.match(r"^(amp|lt|gt)?;", chunk), chunk[:10]
    assert_rejoins([unescape_mrkdwn(c) for c in chunks], text)


def test_split_prefers_paragraphs_then_sentences() -> None:
    paragraph = "Sentence one is here. " * 60  # ~1320 characters
    text = f"{paragraph.strip()}\n\n{paragraph.strip()}\n\n{paragraph.strip()}"
    chunks = split_text(text, SECTION_TEXT_LIMIT)
    assert len(chunks) == 2
    assert chunks[0].endswith("here.") and chunks[1].startswith("Sentence")
    long_line = "Word " * 1000
    chunks = split_text(long_line.strip(), 1000)
    assert all(len(c) <= 1000 for c in chunks)
    assert all(c.endswith("Word") for c in chunks)


def test_split_without_any_boundary_cuts_outside_entities() -> None:
    escaped = escape_mrkdwn("<>&" * 3000)
    chunks = split_text(escaped, SECTION_TEXT_LIMIT)
    assert "".join(chunks) == escaped
    assert all(len(c) <= SECTION_TEXT_LIMIT and c.endswith(";") for c in chunks)


def test_label_and_bad_ids() -> None:
    [(_, blocks)] = draft_message("Draft B", "x", DRAFT_ID, 0)
    assert blocks[0]["text"]["text"] == "Draft B"
    with pytest.raises(ValueError):
        draft_message("A", "x", "v" * (BUTTON_VALUE_LIMIT + 1), 0)
    [(_, blocks)] = draft_message("A", "   ", DRAFT_ID, 0)
    check_limits(blocks)


# ------------------------------------------------------------------------------ notices, scores


def test_model_failure_notice() -> None:
    text, blocks = model_failure_notice(1, 3)
    assert text == "1 of 3 models failed to produce a draft for this ticket; the other drafts are below."
    assert text in all_text(blocks)
    assert "the other draft is below" in model_failure_notice(1, 2)[0]
    assert model_failure_notice(3, 3)[0].startswith("All 3 models failed")
    with pytest.raises(ValueError):
        model_failure_notice(0, 3)
    check_limits(blocks)


def test_new_round_notice() -> None:
    text, blocks = new_round_notice(2)
    assert text == "The customer replied: new drafts (round 2)"
    assert text in all_text(blocks)
    check_limits(blocks)


def test_scores() -> None:
    assert SCORE_REACTIONS == {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
    assert [score_from_action_id(f"rate_{n}") for n in range(1, 6)] == [1, 2, 3, 4, 5]
    for bad in ("rate_0", "rate_6", "send_to_zendesk", "rate_", "rate_1x", ""):
        assert score_from_action_id(bad) is None

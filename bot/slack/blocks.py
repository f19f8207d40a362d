"""Slack Block Kit payloads for draftdesk. Pure functions: no I/O, no Slack client.

Every text that came from a ticket or a model goes through :func:`escape_mrkdwn` and is sent with
``verbatim: true``, so a customer (or a model echoing one) can neither ping ``<!channel>`` nor forge
a link. Drafts are blind: nothing here ever receives a model name, only a label such as ``"A"``.

Slack limits respected here (Block Kit reference): section text ≤ 3000 characters, header text
≤ 150, ≤ 50 blocks per message, button text ≤ 75 and value ≤ 2000, confirm dialog title ≤ 100,
text ≤ 300, confirm/deny ≤ 30. Messages with ~13k characters of block text are refused with
``msg_blocks_too_long`` even though no documented limit is reached, so a message here carries at
most :data:`MAX_MESSAGE_TEXT` characters of block text and long drafts continue in more messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from core.domain import VOTE_REASONS, Ticket
from core.languages import language_name
from core.placeholders import PLACEHOLDER_PATTERN

SECTION_TEXT_LIMIT = 3000
HEADER_TEXT_LIMIT = 150
MAX_BLOCKS = 50
BUTTON_TEXT_LIMIT = 75
BUTTON_VALUE_LIMIT = 2000
MAX_MESSAGE_TEXT = 12_000
# Draft text per message; the rest of MAX_MESSAGE_TEXT is for the header, buttons, dialog, context.
DRAFT_TEXT_PER_MESSAGE = 10_500
FALLBACK_PREVIEW = 150
SUBJECT_LIMIT = 1000

SCORE_REACTIONS: dict[str, int] = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
RATE_ACTION_PREFIX = "rate_"
RATE_ACTION_IDS = tuple(f"{RATE_ACTION_PREFIX}{score}" for score in range(1, 6))
SEND_ACTION_ID = "send_to_zendesk"

Block = dict[str, Any]
Message = tuple[str, list[Block]]

_ENTITY_MAX = len("&amp;")
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*\s")


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack treats as control characters in mrkdwn.

    ``&`` goes first so the entities produced for ``<`` and ``>`` are not escaped twice.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape_mrkdwn(text: str) -> str:
    """Inverse of :func:`escape_mrkdwn` (``&amp;`` last, so ``&amp;lt;`` stays ``&lt;``)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def score_from_action_id(action_id: str) -> int | None:
    """``"rate_3"`` → 3; anything that is not one of the five rating buttons → None."""
    if action_id in RATE_ACTION_IDS:
        return int(action_id[len(RATE_ACTION_PREFIX) :])
    return None


# --------------------------------------------------------------------------- text helpers


def _safe_cut(text: str, cut: int) -> int:
    """Move ``cut`` back to the start of an escape entity if it would fall inside one.

    In escaped text every ``&`` starts an entity, so a cut is inside one exactly when the last
    ``&`` in the few characters before it has no ``;`` between it and the cut.
    """
    amp = text.rfind("&", max(0, cut - _ENTITY_MAX + 1), cut)
    if amp != -1 and ";" not in text[amp:cut]:
        return amp
    return cut


def truncate_escaped(text: str, limit: int) -> str:
    """Shorten already-escaped text to ≤ ``limit`` characters, ending with "…" when cut."""
    if len(text) <= limit:
        return text
    cut = _safe_cut(text, limit - 1)
    return text[:cut].rstrip() + "…"


def _find_cut(text: str, start: int, limit: int) -> int:
    """Where to end the piece that starts at ``start``: the best boundary within ``limit``.

    Preference: paragraph, line, sentence, word, then a hard cut (outside escape entities). A
    coarser boundary is only taken when it keeps the piece reasonably full, so a blank line near
    the start does not produce a run of tiny sections.
    """
    end = start + limit
    for separator in ("\n\n", "\n"):
        idx = text.rfind(separator, start, end)
        if idx > start + limit // 2:
            return idx
    last_sentence = -1
    for match in _SENTENCE_END.finditer(text, start + limit // 3, end + 1):
        last_sentence = match.end() - 1  # keep the punctuation, cut before the whitespace
    if last_sentence != -1:
        return last_sentence
    idx = max(text.rfind(" ", start, end), text.rfind("\t", start, end))
    if idx > start + limit // 4:
        return idx
    return _safe_cut(text, end)


def split_text(text: str, limit: int) -> list[str]:
    """Split text into pieces of ≤ ``limit`` characters at natural boundaries.

    Whitespace at the split points is dropped (it would be invisible at the edge of a Slack block
    anyway); everything else is kept in order. Works on positions rather than slicing the rest of
    the string each time, so a megabyte of text splits in linear time.
    """
    pieces: list[str] = []
    n = len(text)
    pos = 0
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            return pieces
        if n - pos <= limit:
            pieces.append(text[pos:].rstrip())
            return pieces
        cut = _find_cut(text, pos, limit)
        piece = text[pos:cut].rstrip()
        if piece:
            pieces.append(piece)
        pos = cut


# --------------------------------------------------------------------------- block builders


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _mrkdwn(text: str, *, verbatim: bool = True) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": verbatim}


def _section(text: str, block_id: str) -> Block:
    return {"type": "section", "block_id": block_id, "text": _mrkdwn(text)}


def _header(text: str, block_id: str) -> Block:
    if len(text) > HEADER_TEXT_LIMIT:
        text = text[: HEADER_TEXT_LIMIT - 1] + "…"
    return {"type": "header", "block_id": block_id, "text": _plain(text)}


def _context(texts: list[str], block_id: str) -> Block:
    return {"type": "context", "block_id": block_id, "elements": [_mrkdwn(t) for t in texts]}


def iter_block_texts(blocks: list[Block]) -> Iterator[str]:
    """Every ``text`` string inside the blocks (headers, sections, buttons, dialogs, context)."""

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    yield value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    yield from walk(blocks)


def block_text_length(blocks: list[Block]) -> int:
    """Characters of text in the blocks: what ``msg_blocks_too_long`` is about."""
    return sum(len(t) for t in iter_block_texts(blocks))


# --------------------------------------------------------------------------- messages


def ticket_parent_message(
    ticket: Ticket, sources: Sequence[tuple[str, str]] = (), language: str | None = None
) -> Message:
    """The channel message that opens a ticket's thread: id, subject, requester, status, the
    customer's language (when decided), link, and the Help Center articles that fit it best
    (``sources``: title, URL).

    The link target is the trusted ticket URL from the Zendesk API; the subject and the names came
    from the customer and are escaped.
    """
    subject = truncate_escaped(escape_mrkdwn(ticket.subject.strip() or "(no subject)"), SUBJECT_LIMIT)
    first_name = truncate_escaped(escape_mrkdwn(ticket.requester_first_name), 100)
    status = truncate_escaped(escape_mrkdwn(ticket.status), 50)
    # `|` would end the link target early; `<`/`>`/`&` are escaped like any mrkdwn text.
    url = escape_mrkdwn(ticket.url).replace("|", "%7C")
    link = f"<{url}|#{ticket.id}>"
    body = f"*New ticket {link}:* {subject}\n*Requester:* {first_name}    *Status:* {status}"
    if language:
        body += f"    *Language:* {escape_mrkdwn(language_name(language))}"
    blocks = [_section(body, "ticket")]
    if sources:
        links = [
            f"<{escape_mrkdwn(url).replace('|', '%7C')}|{escape_mrkdwn(title)[:150]}>"
            for title, url in sources
        ]
        blocks.append(_context([":books: *Help Center:* " + " · ".join(links)], "sources"))
    blocks.append(
        _context(["Draft replies are in the thread. Rate each one 1–5; model names stay hidden."], "help")
    )
    fallback = f"New ticket #{ticket.id}: {truncate_escaped(subject, FALLBACK_PREVIEW)}"
    return fallback, blocks


def draft_name(label: str, round_number: int) -> str:
    """ "Draft B", and "Draft B of round 2" from a ticket's second round on: outside the thread (App
    Home, a message about a send) the label alone does not say which of a ticket's drafts it was."""
    return f"Draft {label}" if round_number <= 1 else f"Draft {label} of round {round_number}"


def _draft_title(label: str) -> str:
    label = label.strip()
    return label if label.lower().startswith("draft ") else f"Draft {label}"


def _rated_text(rated_count: int) -> str:
    if rated_count <= 0:
        return "Not rated yet"
    return f"Rated by {rated_count} agent{'s' if rated_count != 1 else ''}"


def _draft_actions(title: str, draft_id: str) -> Block:
    rate_buttons = [
        {"type": "button", "action_id": action_id, "text": _plain(str(score)), "value": draft_id}
        for score, action_id in enumerate(RATE_ACTION_IDS, start=1)
    ]
    send_button = {
        "type": "button",
        "action_id": SEND_ACTION_ID,
        "text": _plain("Send to Zendesk"),
        "value": draft_id,
        "style": "primary",
    }  # no confirm dialog: the button opens the send modal, which is the confirmation
    return {"type": "actions", "block_id": "draft_actions", "elements": [*rate_buttons, send_button]}


_ESCAPED_PLACEHOLDER = re.compile(PLACEHOLDER_PATTERN.pattern.replace("<", "&lt;").replace(">", "&gt;"))


def highlight_placeholders(escaped: str) -> str:
    """Placeholders left in escaped text as code, so agents see what must be edited out."""
    return _ESCAPED_PLACEHOLDER.sub(lambda m: f"`{m.group(0)}`", escaped)


def draft_message(
    label: str, text: str, draft_id: str, rated_count: int, sent_note: str = ""
) -> list[Message]:
    """The thread message(s) for one draft: header, escaped text, and (last message) the controls.

    ``label`` is the blind label ("A", or "Draft A"); never pass a model name. A draft with more
    than :data:`DRAFT_TEXT_PER_MESSAGE` characters of escaped text continues in further messages
    titled "Draft A (continued 2/3)"; only the last one carries the rating buttons, the send button
    and the "Rated by N agents" context (a count, never the scores, so raters are not anchored).
    """
    if not draft_id or len(draft_id) > BUTTON_VALUE_LIMIT:
        raise ValueError(f"draft_id must be 1-{BUTTON_VALUE_LIMIT} characters, got {len(draft_id)}")
    title = _draft_title(label)
    escaped = highlight_placeholders(escape_mrkdwn(text.strip()))
    parts = split_text(escaped, DRAFT_TEXT_PER_MESSAGE) or ["_(empty draft)_"]
    total = len(parts)
    messages: list[Message] = []
    for number, part in enumerate(parts, start=1):
        heading = title if number == 1 else f"{title} (continued {number}/{total})"
        blocks: list[Block] = [_header(heading, "draft_header")]
        sections = split_text(part, SECTION_TEXT_LIMIT)
        blocks += [_section(chunk, f"draft_text_{i}") for i, chunk in enumerate(sections, start=1)]
        if number == total:
            blocks.append(_draft_actions(title, draft_id))
            status = [_rated_text(rated_count)]
            if sent_note:
                status.append(f":white_check_mark: {sent_note}")
            blocks.append(_context(status, "draft_status"))
        fallback = f"{escape_mrkdwn(heading)}: {truncate_escaped(part, FALLBACK_PREVIEW)}"
        messages.append((fallback, blocks))
    return messages


def model_failure_notice(failed: int, total: int) -> Message:
    """A visible note in the thread when some models produced no draft (which ones stays hidden)."""
    if total <= 0 or not 0 < failed <= total:
        raise ValueError(f"need 0 < failed <= total, got failed={failed}, total={total}")
    if failed == total:
        text = (
            f"All {total} models failed to produce a draft for this ticket."
            if total > 1
            else "The model failed to produce a draft for this ticket."
        )
    else:
        rest = "the other draft is below." if total - failed == 1 else "the other drafts are below."
        text = f"{failed} of {total} models failed to produce a draft for this ticket; {rest}"
    return text, [_context([f":warning: {text}"], "model_failure")]


def language_notice(language: str, drafts: int) -> Message:
    """Why a ticket has fewer drafts than there are models: the others do not write its language
    (which models stays hidden, as with failures)."""
    name = language_name(language) if language else "this language"
    if drafts <= 0:
        text = f"This ticket is in {name}: no model writes {name}, so there are no drafts."
    else:
        below = "the draft below is" if drafts == 1 else f"the {drafts} drafts below are"
        text = f"This ticket is in {name}: no other model writes {name}; {below} all there is."
    return text, [_context([f":globe_with_meridians: {text}"], "language_coverage")]


def new_round_notice(round_number: int) -> Message:
    """Marks where the drafts for the customer's next reply start in the same thread."""
    text = f"The customer replied: new drafts (round {round_number})"
    return text, [
        {"type": "divider", "block_id": "round_divider"},
        _section(f":speech_balloon: *{text}*", "round_notice"),
    ]


def vote_confirmation(label: str, score: int) -> str:
    """The ephemeral answer to a voter: their own score, never the model behind the label."""
    return f"You rated {_draft_title(label)} {score}/5. Rate again to change it; your latest rating counts."


REASON_ACTION = "vote_reason"  # the picker (static_select); its block_id carries the draft id
REASON_NOTE_ACTION = "vote_reason_note"  # "Other": the agent's own words, sent with Enter
REASON_NOTE_LIMIT = 500


def reason_picker(label: str, score: int, draft_id: str) -> Message:
    """The ephemeral answer to a 1 or 2: the confirmation, and an optional "what was wrong?"."""
    text = f"{vote_confirmation(label, score)} What was wrong with it? (optional, only you see this)"
    options = [
        {"text": _plain(name), "value": code} for code, name in VOTE_REASONS.items() if code != "other"
    ]
    return text, [
        _section(text, "vote_reason_prompt"),
        {
            "type": "actions",
            "block_id": f"{REASON_ACTION}:{draft_id}",
            "elements": [
                {
                    "type": "static_select",
                    "action_id": REASON_ACTION,
                    "placeholder": _plain("Pick a reason"),
                    "options": options,
                }
            ],
        },
        {
            "type": "input",
            "block_id": f"{REASON_NOTE_ACTION}:{draft_id}",
            "dispatch_action": True,
            "optional": True,
            "label": _plain("Other (type, then press Enter)"),
            "element": {
                "type": "plain_text_input",
                "action_id": REASON_NOTE_ACTION,
                "max_length": REASON_NOTE_LIMIT,
                "dispatch_action_config": {"trigger_actions_on": ["on_enter_pressed"]},
            },
        },
    ]


def draft_id_of_block(block_id: str) -> str:
    """The draft id a reason picker's block carries (``vote_reason:t12r1A`` → ``t12r1A``)."""
    return block_id.partition(":")[2]


def reason_noted(label: str, reason: str, note: str | None) -> str:
    said = f"{VOTE_REASONS[reason]}: {escape_mrkdwn(note)}" if note else VOTE_REASONS[reason]
    return f"Thanks, noted for {_draft_title(label)}: {said}"


def message_lines(message: dict) -> list[str]:
    """A posted message as plain lines: its blocks' text, buttons as [ labels ]."""
    lines: list[str] = []
    for block in message.get("blocks") or []:
        kind = block.get("type")
        if kind in ("section", "header"):
            text = block.get("text", {}).get("text", "")
            lines += [t[:200] for t in text.splitlines() if t.strip()]
        elif kind == "context":
            lines += [e.get("text", "") for e in block.get("elements", [])]
        elif kind == "actions":
            labels = [e.get("text", {}).get("text", "") for e in block.get("elements", [])]
            lines.append("[ " + " ] [ ".join(labels) + " ]")
    return lines or [message.get("text", "")]

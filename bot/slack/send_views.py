"""The "Send to Zendesk" modal as Block Kit views, and reading its submission back. Pure.

The modal holds the draft's text (placeholders the ticket knows already filled), editable; the
choice of an internal note or a public reply (only where public replies are allowed); and, when
the round was sent before, the sends so far and a box the agent must tick to send again. Warnings
(a newer comment on the ticket, placeholders left) sit above the text. Every text from a ticket
or a model is escaped and ``verbatim``, as in the thread.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.slack.blocks import escape_mrkdwn, truncate_escaped
from core.domain import Comment, SendRecord

CALLBACK_ID = "send_draft"
TEXT_ACTION = "text"
KIND_BLOCK, KIND_ACTION = "reply_kind", "kind"
CONFIRM_BLOCK, CONFIRM_ACTION = "confirm_again", "again"
INTERNAL, PUBLIC = "internal", "public"
MAX_TEXT = 3000  # Slack's limit on a plain_text_input
MAX_METADATA = 3000  # Slack's limit on a view's private_metadata
COMMENT_PREVIEW = 1500


def text_hash(text: str) -> str:
    """Whitespace-insensitive: an agent re-wrapping a line has not edited the reply."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class ModalState:
    """What the modal carries between Slack and the bot (``private_metadata``)."""

    draft_id: str
    channel: str
    thread_ts: str | None
    shown_hash: str  # the text the modal offered, hashed (see `text_hash`): "edited" if it differs
    known_sends: tuple[str, ...]  # the round's sends the modal told the agent about
    text_block: str = "draft_text"  # a new block id when the bot replaces the text (a refill)
    newest_seen: int | None = None  # the ticket's newest public comment when the modal showed it
    restored: bool = False  # the text is the agent's own, from a send that failed: never refilled

    def to_metadata(self) -> str:
        return json.dumps(
            {
                "d": self.draft_id,
                "c": self.channel,
                "t": self.thread_ts,
                "s": self.shown_hash,
                "k": list(self.known_sends),
                "b": self.text_block,
                "n": self.newest_seen,
                "r": 1 if self.restored else 0,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_metadata(cls, metadata: str) -> ModalState | None:
        """None for metadata the bot did not write (a forged or foreign view)."""
        try:
            data = json.loads(metadata)
            return cls(
                str(data["d"]),
                str(data["c"]),
                data["t"],
                str(data["s"]),
                tuple(str(k) for k in data["k"]),
                str(data["b"]),
                int(data["n"]) if data.get("n") is not None else None,
                bool(data.get("r")),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Submission:
    text: str
    public: bool
    confirmed_again: bool


def read_submission(state_values: Mapping[str, Any], text_block: str) -> Submission:
    """The agent's choices from ``view.state.values``; missing fields read as empty or default."""
    text = ((state_values.get(text_block) or {}).get(TEXT_ACTION) or {}).get("value") or ""
    kind = ((state_values.get(KIND_BLOCK) or {}).get(KIND_ACTION) or {}).get("selected_option") or {}
    boxes = ((state_values.get(CONFIRM_BLOCK) or {}).get(CONFIRM_ACTION) or {}).get("selected_options") or []
    return Submission(str(text), kind.get("value") == PUBLIC, any(b.get("value") == "yes" for b in boxes))


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _context(text: str, block_id: str) -> dict[str, Any]:
    return {
        "type": "context",
        "block_id": block_id,
        "elements": [{"type": "mrkdwn", "text": text, "verbatim": True}],
    }


def _section(text: str, block_id: str) -> dict[str, Any]:
    return {
        "type": "section",
        "block_id": block_id,
        "text": {"type": "mrkdwn", "text": text, "verbatim": True},
    }


def sends_summary(label: str, sends: Sequence[SendRecord], labels: Mapping[str, str]) -> str:
    """ "Draft B was already sent by <@U1> at 10:42" for each send of the round, newest last."""
    lines = []
    for send in sends:
        which = labels.get(send.draft_id, label)
        state = "was already sent" if send.state == "sent" else "is being sent (outcome not known yet)"
        lines.append(f"Draft {which} {state} by <@{send.user}> at {send.started_at:%H:%M} UTC")
    return "\n".join(lines)


def send_modal(
    *,
    label: str,
    ticket_id: int,
    state: ModalState,
    text: str,
    allow_public: bool,
    earlier_sends: str = "",
    newer_comment: Comment | None = None,
    newer_by_requester: bool = False,
    unresolved: Sequence[str] = (),
    note: str = "",
    public_chosen: bool = False,
) -> dict[str, Any]:
    """The modal for sending Draft ``label`` of ticket ``ticket_id``."""
    blocks: list[dict[str, Any]] = [
        _context(f"Ticket #{ticket_id} · edit the text, then send. {escape_mrkdwn(note)}".strip(), "about")
    ]
    if earlier_sends:
        blocks.append(_section(f":warning: {earlier_sends}", "earlier_sends"))
    if newer_comment is not None:
        who = "The customer" if newer_by_requester else "Someone"
        body = truncate_escaped(escape_mrkdwn(newer_comment.body.strip()), COMMENT_PREVIEW)
        quoted = "\n".join(f"> {line}" for line in body.splitlines() or [""])
        blocks.append(
            _section(
                f":warning: *{who} wrote after this draft was made* "
                f"({newer_comment.created_at:%Y-%m-%d %H:%M} UTC):\n{quoted}",
                "newer_comment",
            )
        )
    if unresolved:
        names = ", ".join(f"`{escape_mrkdwn(p)}`" for p in unresolved)
        blocks.append(_section(f":pencil2: Replace {names} in the text before sending.", "placeholders"))
    blocks.append(
        {
            "type": "input",
            "block_id": state.text_block,
            "label": _plain("Reply"),
            "element": {
                "type": "plain_text_input",
                "action_id": TEXT_ACTION,
                "multiline": True,
                "max_length": MAX_TEXT,
                "initial_value": text[:MAX_TEXT],
            },
        }
    )
    internal = {"text": _plain("Internal note (agents only)"), "value": INTERNAL}
    if allow_public:
        public = {"text": _plain("Public reply (the customer gets it)"), "value": PUBLIC}
        blocks.append(
            {
                "type": "input",
                "block_id": KIND_BLOCK,
                "label": _plain("Add it as"),
                "element": {
                    "type": "radio_buttons",
                    "action_id": KIND_ACTION,
                    "initial_option": public if public_chosen else internal,
                    "options": [internal, public],
                },
            }
        )
    if earlier_sends:
        blocks.append(
            {
                "type": "input",
                "block_id": CONFIRM_BLOCK,
                "label": _plain("This round was sent before"),
                "element": {
                    "type": "checkboxes",
                    "action_id": CONFIRM_ACTION,
                    "options": [{"text": _plain("Send this one too"), "value": "yes"}],
                },
            }
        )
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": _plain(f"Send Draft {label}"[:24]),
        "submit": _plain("Send"),
        "close": _plain("Cancel"),
        "private_metadata": state.to_metadata(),
        "blocks": blocks,
    }


def refusal_modal(label: str, ticket_id: int, reason: str) -> dict[str, Any]:
    """The modal when the draft cannot be sent at all (the ticket is solved or closed)."""
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": _plain(f"Send Draft {label}"[:24]),
        "close": _plain("Close"),
        "blocks": [_section(f":no_entry: Ticket #{ticket_id}: {escape_mrkdwn(reason)}", "refused")],
    }


def sent_note(sends: Sequence[SendRecord]) -> str:
    """The line under a sent draft: "Sent by <@U1> as an internal note (edited)"."""
    parts = []
    for send in sends:
        kind = "a public reply" if send.public else "an internal note"
        parts.append(f"Sent by <@{send.user}> as {kind} ({'edited' if send.edited else 'as is'})")
    return " · ".join(parts)

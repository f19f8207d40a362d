"""Zendesk webhook requests: signature check and ticket-id extraction. Pure logic, no I/O.

Zendesk signs each webhook request as base64(HMAC-SHA256(secret, timestamp + raw body)) and
sends the signature and the timestamp in two headers. Checking the timestamp as well as the
signature stops a captured request from being replayed later.

Two kinds of payload reach us:

* a trigger/automation webhook, whose JSON body the admin writes, e.g.
  ``{"ticket_id": "{{ticket.id}}"}`` (``{"ticket": {"id": …}}`` is tolerated too);
* an event subscription, e.g. ``{"type": "zen:event-type:ticket.created", "subject":
  "zen:ticket:35436", "detail": {"id": "35436", …}, "event": {…}, …}``, ids as strings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime
from typing import Any

SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
# Zendesk signs test sends with this literal secret before the webhook exists.
TEST_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="

EVENT_TYPE_PREFIX = "zen:event-type:"
# Event types that can call for drafts: a new ticket, or a new message on one.
TICKET_EVENTS_WANTED = frozenset({"zen:event-type:ticket.created", "zen:event-type:ticket.comment_added"})

_EPOCH = re.compile(r"[0-9]{1,12}(\.[0-9]+)?")  # no "nan"/"inf"/"1e9", which float() would take


class WebhookAuthError(Exception):
    """The request is not a genuine, fresh Zendesk webhook. The message says why (for logs)."""


class WebhookPayloadError(Exception):
    """The body is not a payload we understand. The message says what is wrong."""


def sign(secret: str, body: bytes, timestamp: str) -> str:
    """The signature Zendesk sends for this body and timestamp header value."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("utf-8") + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(
    secret: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float | None = None,
    tolerance_seconds: int = 300,
) -> None:
    """Raise :class:`WebhookAuthError` unless the signature matches and the timestamp is fresh.

    ``timestamp`` is the header value exactly as received (it is part of the signed message);
    ISO-8601 (what Zendesk sends) and epoch seconds are accepted. ``now`` is epoch seconds.
    """
    if not secret:
        raise WebhookAuthError("no webhook secret is configured")
    if not signature:
        raise WebhookAuthError(f"missing {SIGNATURE_HEADER} header")
    if not timestamp:
        raise WebhookAuthError(f"missing {TIMESTAMP_HEADER} header")
    sent_at = _parse_timestamp(timestamp)
    expected = sign(secret, body, timestamp)
    if not hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8")):
        raise WebhookAuthError("signature does not match (wrong secret, or the body was altered)")
    current = time.time() if now is None else now
    skew = current - sent_at
    if skew > tolerance_seconds:
        raise WebhookAuthError(f"timestamp is {skew:.0f}s old (limit {tolerance_seconds}s): possible replay")
    if -skew > tolerance_seconds:
        raise WebhookAuthError(f"timestamp is {-skew:.0f}s in the future (limit {tolerance_seconds}s)")


def _parse_timestamp(value: str) -> float:
    text = value.strip()
    if _EPOCH.fullmatch(text):
        return float(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise WebhookAuthError(f"unreadable {TIMESTAMP_HEADER} value {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


MAX_TICKET_ID = 2**63 - 1  # Zendesk ids are signed 64-bit integers


def parse_ticket_ids(body: bytes) -> list[int]:
    """The ticket ids a webhook body is about; ``[]`` for events that need no drafts.

    Raises :class:`WebhookPayloadError` for a body that is not JSON, has no ticket id, or has an
    id that is not a positive integer (e.g. an unrendered ``{{ticket.id}}`` placeholder).
    """
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, a 5,000-digit number, deep nesting
        raise WebhookPayloadError(f"body is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(payload, dict):
        raise WebhookPayloadError(f"expected a JSON object, got {type(payload).__name__}")

    event_type = payload.get("type")
    if isinstance(event_type, str) and event_type.startswith(EVENT_TYPE_PREFIX):
        if event_type not in TICKET_EVENTS_WANTED:
            return []  # status changes, user/organization events, …: nothing to draft
        return [_ticket_id_of_event(payload, event_type)]

    if "ticket_id" in payload:
        return [_as_ticket_id(payload["ticket_id"], "ticket_id")]
    ticket = payload.get("ticket")
    if isinstance(ticket, dict) and "id" in ticket:
        return [_as_ticket_id(ticket["id"], "ticket.id")]
    raise WebhookPayloadError(
        'no ticket id: expected {"ticket_id": …} (set the trigger\'s JSON body to '
        '{"ticket_id": "{{ticket.id}}"}) or a zen:event-type:ticket.* event'
    )


def _ticket_id_of_event(payload: dict[str, Any], event_type: str) -> int:
    detail = payload.get("detail")
    if isinstance(detail, dict) and "id" in detail:
        return _as_ticket_id(detail["id"], "detail.id")
    subject = payload.get("subject")  # "zen:ticket:35436"
    if isinstance(subject, str) and subject.startswith("zen:ticket:"):
        return _as_ticket_id(subject.removeprefix("zen:ticket:"), "subject")
    raise WebhookPayloadError(f"{event_type} event without a ticket id in detail.id")


def _as_ticket_id(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise WebhookPayloadError(f"{field} must be a ticket number, got {value!r}")
    text = value.strip() if isinstance(value, str) else None
    if isinstance(value, int):
        number = value
    elif text and text.isascii() and text.isdigit() and len(text) <= len(str(MAX_TICKET_ID)):
        number = int(text)
    else:
        raise WebhookPayloadError(f"{field} must be a ticket number, got {str(value)[:40]!r}")
    if not 0 < number <= MAX_TICKET_ID:
        shown = str(number) if number.bit_length() < 128 else f"a number of {number.bit_length()} bits"
        raise WebhookPayloadError(f"{field} must be a positive ticket number up to 2**63-1, got {shown}")
    return number

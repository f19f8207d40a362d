"""Webhook signature checks and payload parsing (integrations/zendesk_webhook.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from integrations.zendesk_webhook import (
    SIGNATURE_HEADER,
    TEST_SECRET,
    TIMESTAMP_HEADER,
    WebhookAuthError,
    WebhookPayloadError,
    parse_ticket_ids,
    sign,
    verify_signature,
)

SECRET = "s3cr3t-signing-key"
BODY = b'{"ticket_id": "123"}'
STAMP = "2023-01-01T12:00:00Z"
NOW = datetime(2023, 1, 1, 12, 1, 0, tzinfo=UTC).timestamp()  # one minute after STAMP


def test_header_names_are_zendesks() -> None:
    assert SIGNATURE_HEADER == "X-Zendesk-Webhook-Signature"
    assert TIMESTAMP_HEADER == "X-Zendesk-Webhook-Signature-Timestamp"


def test_good_signature_passes() -> None:
    verify_signature(SECRET, BODY, sign(SECRET, BODY, STAMP), STAMP, now=NOW)


def test_sign_matches_an_independently_computed_signature() -> None:
    # printf '%s' "$STAMP$BODY" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64
    assert sign(SECRET, BODY, STAMP) == "JMEr5faTBWvTr3Qd1FTIlMuQJJKrJM/HexOLPrSrL28="
    assert sign(TEST_SECRET, BODY, STAMP) == "DqYfnQOYWnEB3WdkC2OOVUkH1W9GqCtF7L543UFpAC0="


def test_zendesk_test_secret_works_as_a_secret() -> None:
    assert TEST_SECRET == "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
    signature = sign(TEST_SECRET, BODY, STAMP)
    verify_signature(TEST_SECRET, BODY, signature, STAMP, now=NOW)
    with pytest.raises(WebhookAuthError):
        verify_signature(SECRET, BODY, signature, STAMP, now=NOW)


def test_epoch_seconds_timestamp_is_accepted() -> None:
    stamp = str(int(NOW) - 30)
    verify_signature(SECRET, BODY, sign(SECRET, BODY, stamp), stamp, now=NOW)


def test_real_clock_is_used_by_default() -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    verify_signature(SECRET, BODY, sign(SECRET, BODY, stamp), stamp)


def test_forged_signature_raises() -> None:
    forged = "bm90IHRoZSByaWdodCBzaWduYXR1cmUgYXQgYWxsISE="
    with pytest.raises(WebhookAuthError, match="does not match"):
        verify_signature(SECRET, BODY, forged, STAMP, now=NOW)


def test_non_ascii_signature_raises_cleanly() -> None:
    with pytest.raises(WebhookAuthError):
        verify_signature(SECRET, BODY, "é" * 44, STAMP, now=NOW)


def test_wrong_secret_raises() -> None:
    with pytest.raises(WebhookAuthError, match="does not match"):
        verify_signature(SECRET, BODY, sign("another-secret", BODY, STAMP), STAMP, now=NOW)


def test_body_tampered_after_signing_raises() -> None:
    signature = sign(SECRET, BODY, STAMP)
    with pytest.raises(WebhookAuthError, match="does not match"):
        verify_signature(SECRET, b'{"ticket_id": "124"}', signature, STAMP, now=NOW)


def test_timestamp_changed_after_signing_raises() -> None:
    signature = sign(SECRET, BODY, STAMP)
    with pytest.raises(WebhookAuthError, match="does not match"):
        verify_signature(SECRET, BODY, signature, "2023-01-01T12:00:30Z", now=NOW)


@pytest.mark.parametrize(
    ("signature", "timestamp", "missing"),
    [(None, STAMP, SIGNATURE_HEADER), ("abc", None, TIMESTAMP_HEADER), ("", STAMP, SIGNATURE_HEADER)],
)
def test_missing_headers_raise(signature: str | None, timestamp: str | None, missing: str) -> None:
    with pytest.raises(WebhookAuthError, match=missing):
        verify_signature(SECRET, BODY, signature, timestamp, now=NOW)


def test_empty_secret_raises() -> None:
    with pytest.raises(WebhookAuthError, match="secret"):
        verify_signature("", BODY, sign("", BODY, STAMP), STAMP, now=NOW)


def test_stale_timestamp_raises() -> None:
    stamp = "2023-01-01T11:55:00Z"  # six minutes before NOW
    with pytest.raises(WebhookAuthError, match="old"):
        verify_signature(SECRET, BODY, sign(SECRET, BODY, stamp), stamp, now=NOW)


def test_future_timestamp_raises() -> None:
    stamp = "2023-01-01T12:07:00Z"  # six minutes after NOW
    with pytest.raises(WebhookAuthError, match="future"):
        verify_signature(SECRET, BODY, sign(SECRET, BODY, stamp), stamp, now=NOW)


def test_tolerance_is_configurable() -> None:
    stamp = "2023-01-01T11:55:00Z"
    verify_signature(SECRET, BODY, sign(SECRET, BODY, stamp), stamp, now=NOW, tolerance_seconds=600)


@pytest.mark.parametrize("stamp", ["yesterday", "nan", "inf", "1e9", ""])
def test_unreadable_timestamp_raises(stamp: str) -> None:
    with pytest.raises(WebhookAuthError):
        verify_signature(SECRET, BODY, sign(SECRET, BODY, stamp), stamp, now=NOW)


# -- payloads -------------------------------------------------------------------------------


def _event(event_type: str, ticket_id: str = "35436", **extra: object) -> bytes:
    payload = {
        "type": event_type,
        "account_id": 88888888,
        "id": "01HNXXXX-CTEXAMPLE",
        "time": "2024-04-17T17:18:10Z",
        "zendesk_event_version": "2022-11-06",
        "subject": f"zen:ticket:{ticket_id}",
        "detail": {
            "id": ticket_id,
            "status": "OPEN",
            "via": {"channel": "web"},
            "created_at": "2024-04-17T17:18:10Z",
            "updated_at": "2024-04-17T17:18:10Z",
        },
        "event": {"current": {"status": "OPEN"}},
        **extra,
    }
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    "body",
    [b'{"ticket_id": "123"}', b'{"ticket_id": 123}', b'{"ticket_id": " 123 "}', b'{"ticket": {"id": 123}}'],
)
def test_trigger_payloads(body: bytes) -> None:
    assert parse_ticket_ids(body) == [123]


def test_trigger_payload_with_other_fields() -> None:
    body = json.dumps({"ticket_id": "77", "subject": "Printer on fire", "status": "New"}).encode()
    assert parse_ticket_ids(body) == [77]


@pytest.mark.parametrize(
    "event_type", ["zen:event-type:ticket.created", "zen:event-type:ticket.comment_added"]
)
def test_event_subscription_payloads(event_type: str) -> None:
    assert parse_ticket_ids(_event(event_type)) == [35436]


def test_event_without_detail_falls_back_to_subject() -> None:
    payload = json.loads(_event("zen:event-type:ticket.created"))
    del payload["detail"]
    assert parse_ticket_ids(json.dumps(payload).encode()) == [35436]


@pytest.mark.parametrize(
    "event_type",
    [
        "zen:event-type:ticket.status_changed",
        "zen:event-type:ticket.priority_changed",
        "zen:event-type:ticket.tags_changed",
        "zen:event-type:user.active_changed",
    ],
)
def test_other_events_are_ignored(event_type: str) -> None:
    assert parse_ticket_ids(_event(event_type)) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not valid JSON"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"123"', "JSON object"),
        (b"{}", "no ticket id"),
        (b'{"id": 123}', "no ticket id"),
        (b'{"ticket": {"subject": "x"}}', "no ticket id"),
        (b'{"ticket_id": "{{ticket.id}}"}', "ticket number"),
        (b'{"ticket_id": "12a"}', "ticket number"),
        (b'{"ticket_id": null}', "ticket number"),
        (b'{"ticket_id": 12.5}', "ticket number"),
        (b'{"ticket_id": true}', "ticket number"),
        (b'{"ticket_id": "\xd9\xa3"}', "ticket number"),  # an Arabic-Indic digit
        (b'{"ticket_id": 0}', "positive"),
        (b'{"ticket_id": -5}', "ticket number"),
        (b'{"ticket": {"id": "abc"}}', "ticket.id"),
    ],
)
def test_malformed_payloads_raise(body: bytes, message: str) -> None:
    with pytest.raises(WebhookPayloadError, match=message):
        parse_ticket_ids(body)


def test_event_with_bad_id_raises() -> None:
    with pytest.raises(WebhookPayloadError, match=r"detail\.id"):
        parse_ticket_ids(_event("zen:event-type:ticket.created", ticket_id="not-a-number"))


def test_event_without_any_id_raises() -> None:
    body = json.dumps({"type": "zen:event-type:ticket.created", "detail": {}}).encode()
    with pytest.raises(WebhookPayloadError, match="ticket id"):
        parse_ticket_ids(body)

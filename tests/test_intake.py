import json
import time

import pytest

from bot.drafting.intake import handle_zendesk_webhook
from bot.store.memory import MemoryStore
from core.domain import JOB_QUEUED
from integrations.zendesk_webhook import SIGNATURE_HEADER, TEST_SECRET, TIMESTAMP_HEADER, sign

SECRET = "webhook-secret"


def signed(body: bytes, secret: str = SECRET, stamp: str | None = None) -> dict[str, str]:
    stamp = stamp or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {SIGNATURE_HEADER: sign(secret, body, stamp), TIMESTAMP_HEADER: stamp}


@pytest.fixture
def store():
    return MemoryStore()


def test_trigger_payload_queues_once(store):
    woken = []
    body = json.dumps({"ticket_id": "42"}).encode()
    for _ in range(5):  # Zendesk retries deliveries
        response = handle_zendesk_webhook(body, signed(body), SECRET, store, lambda: woken.append(1))
    assert response.status == 200 and response.body == {"queued": [], "already_queued": [42]}
    assert [j.ticket_id for j in store.jobs(JOB_QUEUED)] == [42]
    assert woken == [1]


def test_event_subscription_payload(store):
    body = json.dumps(
        {"type": "zen:event-type:ticket.comment_added", "detail": {"id": "77"}, "event": {}, "id": "e1"}
    ).encode()
    assert handle_zendesk_webhook(body, signed(body), SECRET, store).status == 200
    assert [j.ticket_id for j in store.jobs()] == [77]


def test_zendesk_test_secret_works(store):
    body = b'{"ticket_id": 5}'
    assert handle_zendesk_webhook(body, signed(body, TEST_SECRET), TEST_SECRET, store).status == 200


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b, h: (b, {**h, SIGNATURE_HEADER: "Zm9yZ2Vk"}),  # forged
        lambda b, h: (b, signed(b, "wrong-secret")),
        lambda b, h: (b.replace(b"42", b"43"), h),  # body changed after signing
        lambda b, h: (b, {}),  # unsigned
        lambda b, h: (
            b,
            signed(b, stamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 360))),
        ),
    ],
    ids=["forged", "wrong-secret", "tampered", "unsigned", "stale"],
)
def test_bad_signatures_queue_nothing(store, mutate):
    body = json.dumps({"ticket_id": "42"}).encode()
    body, headers = mutate(body, signed(body))
    response = handle_zendesk_webhook(body, headers, SECRET, store)
    assert response.status == 401
    assert store.jobs() == []


def test_malformed_and_oversized_bodies(store):
    for body in [b"{not json", b'{"ticket_id": "abc"}', b'{"nothing": 1}']:
        response = handle_zendesk_webhook(body, signed(body), SECRET, store)
        assert response.status == 400 and response.body["error"]
    big = b'{"ticket_id": 1, "pad": "' + b"x" * 1_100_000 + b'"}'
    assert handle_zendesk_webhook(big, signed(big), SECRET, store, max_bytes=1_000_000).status == 413
    assert store.jobs() == []


def test_header_names_are_case_insensitive(store):
    body = b'{"ticket_id": 8}'
    headers = {k.lower(): v for k, v in signed(body).items()}
    assert handle_zendesk_webhook(body, headers, SECRET, store).status == 200

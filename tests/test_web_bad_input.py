"""Malformed and hostile requests get a 4xx and never a traceback, on both HTTP endpoints.

A real server (bot/operations/web.py) on a loopback port, a real Bolt app behind /slack/events and the real
Zendesk webhook handler with a real store behind /zendesk/webhook; requests go out raw
(http.client), so headers such as a negative Content-Length reach the server as sent.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult

from bot.drafting.intake import handle_zendesk_webhook
from bot.operations.web import DraftdeskWSGI, WebServer
from bot.store.partitioned import PartitionedStore
from integrations.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

SLACK_SECRET = "slack-signing-secret-for-tests"
ZENDESK_SECRET = "zendesk-webhook-secret-for-tests"


class Site:
    def __init__(self, server: WebServer, store: PartitionedStore, clicks: list[str]) -> None:
        self.server, self.store, self.clicks = server, store, clicks

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        connection.putrequest("POST", path, skip_accept_encoding=True)
        headers = {"Content-Length": str(len(body)), **headers}
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        connection.send(body)
        response = connection.getresponse()
        payload = response.read()
        connection.close()
        return response.status, json.loads(payload) if payload.startswith(b"{") else {}

    def slack(self, body: bytes, content_type: str, signed: bool = True) -> tuple[int, dict]:
        timestamp = str(int(time.time()))
        headers = {"Content-Type": content_type}
        if signed:
            base = b"v0:" + timestamp.encode() + b":" + body  # as Slack signs, over the raw bytes
            signature = "v0=" + hmac.new(SLACK_SECRET.encode(), base, hashlib.sha256).hexdigest()
            headers |= {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
        return self.post("/slack/events", body, headers)

    def zendesk(self, body: bytes, extra: dict[str, str] | None = None) -> tuple[int, dict]:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(ZENDESK_SECRET, body, timestamp),
            TIMESTAMP_HEADER: timestamp,
        }
        return self.post("/zendesk/webhook", body, headers | (extra or {}))


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    def authorize(**_: object) -> AuthorizeResult:  # no Slack API call: nothing here needs one
        return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="xoxb-test", bot_user_id="UB")

    bolt = App(signing_secret=SLACK_SECRET, authorize=authorize)
    clicks: list[str] = []

    @bolt.action("rate")
    def rate(ack, body) -> None:  # type: ignore[no-untyped-def]
        ack()
        clicks.append(body["actions"][0]["value"])

    store = PartitionedStore(tmp_path / "store.json")
    queued = threading.Event()

    def webhook(body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
        return handle_zendesk_webhook(body, headers, ZENDESK_SECRET, store, queued.set)

    wsgi = DraftdeskWSGI(bolt, webhook, dict, 100_000, SLACK_SECRET)
    server = WebServer(wsgi, "127.0.0.1", 0, max_body_bytes=100_000)  # as draftdesk/app.py builds it
    server.start()
    yield Site(server, store, clicks)
    server.stop()
    store.close()


def block_action(value: str) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": "U1"},
        "team": {"id": "T1"},
        "channel": {"id": "C1"},
        "actions": [{"action_id": "rate", "block_id": "b", "value": value, "type": "button"}],
        "trigger_id": "t",
        "response_url": "https://hooks.slack.invalid/x",
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


HUGE = b"9" * 5000
ZENDESK_BAD_BODIES = {
    "5000-digit number": b'{"ticket_id": ' + HUGE + b"}",
    "5000-digit string": b'{"ticket_id": "' + HUGE + b'"}',
    "id over 64 bits": b'{"ticket_id": 99999999999999999999}',
    "nested 50,000 deep": b"[" * 50_000,
    "not UTF-8": b'{"ticket_id": "\xff\xfe"}',
    "not JSON": b"ticket_id=5",
    "a JSON list": b"[5]",
}


@pytest.mark.parametrize("body", ZENDESK_BAD_BODIES.values(), ids=ZENDESK_BAD_BODIES.keys())
def test_a_signed_webhook_with_a_bad_body_is_a_400_and_queues_nothing(
    site: Site, body: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    status, answer = site.zendesk(body)
    assert status == 400 and answer["error"]
    assert site.store.jobs() == []
    assert "Traceback" not in capfd.readouterr().err


def test_a_good_webhook_is_queued(site: Site) -> None:
    assert site.zendesk(b'{"ticket_id": "42"}')[0] == 200
    assert [job.ticket_id for job in site.store.jobs()] == [42]


@pytest.mark.parametrize("path", ["/zendesk/webhook", "/slack/events"])
@pytest.mark.parametrize("length", ["-1", "-99999", "abc", "1e3", "99999999999999999999"])
def test_a_bad_content_length_is_a_4xx_on_both_endpoints(
    site: Site, path: str, length: str, capfd: pytest.CaptureFixture[str]
) -> None:
    status, _ = site.post(path, b'{"ticket_id": 1}', {"Content-Length": length})
    assert status in (400, 413)
    assert site.store.jobs() == []
    assert "Traceback" not in capfd.readouterr().err


FORM, JSON = "application/x-www-form-urlencoded", "application/json"
SLACK_BAD_BODIES = {  # body, content type, the answer when signed
    "malformed payload field": (b"payload=%7Bnot-json", FORM, 400),
    "malformed JSON": (b'{"type": "event_callback",', JSON, 400),
    "form labelled JSON": (block_action("3"), JSON, 400),
    "a JSON list": (b"[1, 2]", JSON, 400),
    "nested 10,000 deep": (b"{" + b'"a":[' * 10_000, JSON, 400),
    "not UTF-8": (b"payload=\xff\xfe\xfd", FORM, 401),  # Slack signs text: these bytes it never sent
}


@pytest.mark.parametrize(
    ("body", "kind", "when_signed"), list(SLACK_BAD_BODIES.values()), ids=list(SLACK_BAD_BODIES)
)
def test_slack_checks_the_signature_before_it_parses_anything(
    site: Site, body: bytes, kind: str, when_signed: int, capfd: pytest.CaptureFixture[str]
) -> None:
    unsigned, _ = site.slack(body, kind, signed=False)
    signed, answer = site.slack(body, kind)
    assert unsigned == 401  # anyone can send these: refused unread
    assert signed == when_signed and answer["error"]  # signed but unreadable: told what is wrong
    assert site.clicks == []
    assert "Traceback" not in capfd.readouterr().err


def test_a_signed_click_still_reaches_its_listener_and_a_forged_one_does_not(site: Site) -> None:
    assert site.slack(block_action("4"), "application/x-www-form-urlencoded")[0] == 200
    assert site.slack(block_action("1"), "application/x-www-form-urlencoded", signed=False)[0] == 401
    deadline = time.monotonic() + 10
    while not site.clicks and time.monotonic() < deadline:  # Bolt runs listeners after the ack
        time.sleep(0.01)
    assert site.clicks == ["4"]


def raw_exchange(site: Site, request: bytes) -> bytes:
    """``request`` sent byte for byte; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", site.server.port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_a_chunked_webhook_is_read_whole_and_queued(site: Site) -> None:
    body = b'{"ticket_id": "43"}'
    timestamp = str(int(time.time()))
    head = (
        "POST /zendesk/webhook HTTP/1.1\r\nHost: bot\r\nConnection: close\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        f"{SIGNATURE_HEADER}: {sign(ZENDESK_SECRET, body, timestamp)}\r\n"
        f"{TIMESTAMP_HEADER}: {timestamp}\r\n\r\n"
    )
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:])) + b"0\r\n\r\n"
    answer = raw_exchange(site, head.encode() + chunks)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert [job.ticket_id for job in site.store.jobs()] == [43]


SERVER_REFUSALS = {  # refused by the server before the app sees them
    "garbage start line": (b"GARBAGE\r\n\r\n", b"400"),
    "body over the limit": (
        b"POST /zendesk/webhook HTTP/1.1\r\nHost: bot\r\nContent-Length: 100001\r\n\r\n" + b"x" * 1000,
        b"413",
    ),
    "bad chunk size": (
        b"POST /zendesk/webhook HTTP/1.1\r\nHost: bot\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"400",
    ),
}


@pytest.mark.parametrize(("request_bytes", "status"), SERVER_REFUSALS.values(), ids=SERVER_REFUSALS.keys())
def test_requests_the_server_refuses_get_a_4xx_and_no_traceback(
    site: Site, request_bytes: bytes, status: bytes, capfd: pytest.CaptureFixture[str]
) -> None:
    answer = raw_exchange(site, request_bytes)
    assert answer.split(b" ")[1] == status
    assert site.store.jobs() == [] and site.clicks == []
    assert "Traceback" not in capfd.readouterr().err

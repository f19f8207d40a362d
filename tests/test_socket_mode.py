"""The bot in Slack Socket Mode, end to end on loopback: the real slack_bolt SocketModeHandler (and
slack_sdk's builtin SocketModeClient) against SocketModeServer + FakeSlack, with FakeZendesk and
the tiny NF4 + LoRA models drafting."""

import base64
import json
import logging
import os
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.config import load_settings
from bot.errors import StartupError
from bot.slack.blocks import reason_picker, vote_confirmation
from draftdesk.app import build
from integrations.standins.slack_requests import block_action_payload, event_payload, reaction_event
from integrations.standins.slack_server import BOT_USER_ID, FakeSlack
from integrations.standins.socket_mode_server import (
    OP_CLOSE,
    OP_PONG,
    OP_TEXT,
    SocketModeServer,
    encode_frame,
    websocket_accept,
)
from integrations.standins.zendesk_server import FakeZendesk
from tests import waiting
from tests.waiting import drafts_posted

BOT_TOKEN = "xoxb-socket"
APP_TOKEN = "xapp-1-test"
SECRETS = {
    "SLACK_BOT_TOKEN": BOT_TOKEN,
    "SLACK_APP_TOKEN": APP_TOKEN,
    "ZENDESK_EMAIL": "agent@example.com",
    "ZENDESK_API_TOKEN": "zendesk-token",
    "ZENDESK_WEBHOOK_SECRET": "zendesk-webhook-secret",
}
CHANNEL = "CDRAFTS"
MODELS = [
    ("llama-ft", "llama_base", "llama_adapter"),
    ("gptj-ft", "gptj_base", "gptj_adapter"),
    ("llama", "llama_base", None),
]


def write_config(
    tmp_path, slack, zendesk, models: dict | None, intake: str = "poll", health_check: bool = False
) -> Path:
    """A socket-mode config. ``models=None`` names hub ids that are never loaded (stub backend)."""
    model_tables = "".join(
        f"""
[[models]]
name = "{name}"
base_model = "{models[base] if models else f"stub/{base}"}"
{f'adapter = "{models[adapter]}"' if adapter and models else ""}
max_new_tokens = 12
temperature = 0
"""
        for name, base, adapter in MODELS
    )
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[slack]
mode = "socket"
channel = "{CHANNEL}"
api_url = "{slack.api_url}"
[server]
host = "127.0.0.1"
port = 0
health_check = {str(health_check).lower()}
[zendesk]
url = "{zendesk.url}"
[intake]
mode = "{intake}"
poll_interval_seconds = 86400
[worker]
retry_base_seconds = 0.1
[storage]
path = "store.json"
{model_tables}"""
    )
    return path


def wait_until(condition, timeout=40.0, what="condition"):
    waiting.wait_until(condition, timeout, what)


class StubBackend:
    """Never asked for drafts in the tests that use it (no ticket is queued there)."""

    def count_tokens(self, model_name, text):
        return len(text.split())

    def context_limit(self, model_name):
        return 2048

    def generate(self, prompts):
        raise AssertionError("no drafts expected")

    def generate_many(self, batch):
        raise AssertionError("no drafts expected")


@pytest.fixture
def fakes():
    with (
        SocketModeServer() as socket_mode,
        FakeSlack(token=BOT_TOKEN, socket_mode=socket_mode, app_token=APP_TOKEN) as slack,
        FakeZendesk() as zendesk,
    ):
        zendesk.add_user(100, "Maria Schmidt", "maria@example.com")
        # Created long ago: the poller's first run (since = first start) skips it; the test queues it.
        zendesk.add_ticket(
            7,
            "Backup stuck",
            100,
            comments=[(100, "My backup is stuck at 99%. Help?", True)],
            created_at="2024-01-02T03:04:05Z",
        )
        yield socket_mode, slack, zendesk


def _started(settings_path, backend=None, env=SECRETS):
    app = build(load_settings(settings_path, env=env), backend)
    app.start()
    return app


def _stop_within(app, seconds: float) -> None:
    started = time.monotonic()
    app.stop()
    assert time.monotonic() - started < seconds


def test_socket_mode_drafts_then_button_and_reaction_votes(tmp_path, demo_models, fakes):
    socket_mode, slack, zendesk = fakes
    threads_before = set(threading.enumerate())
    app = _started(write_config(tmp_path, slack, zendesk, demo_models))
    try:
        socket_mode.wait_for_connection(timeout=10)
        assert app.web is None  # socket mode + poll intake: no HTTP server at all
        opens = slack.calls_to("apps.connections.open")
        assert [c.token for c in opens] == [APP_TOKEN] and opens[0].response["ok"] is True
        hello = socket_mode.sent[0]
        assert hello["type"] == "hello" and hello["connection_info"] == {"app_id": "A0DEMO"}

        app.store.enqueue(7, "test")
        app.worker.wake.set()
        wait_until(lambda: drafts_posted(app.store, 7), what="three drafts in the thread")
        channel, parent_ts = app.store.ticket_thread(7)
        assert channel == CHANNEL and len(slack.thread(channel, parent_ts)) == 4
        assert all(c.token == BOT_TOKEN for c in slack.calls_to("chat.postMessage"))
        a, b, _ = app.store.drafts_for_ticket(7)
        updates_before = len(slack.calls_to("chat.update"))

        # Agent 1 clicks 4 on Draft A: an `interactive` envelope, acked without a payload.
        click = block_action_payload("UAGENT1", channel, a.vote_ts, parent_ts, "rate_4", a.id)
        click_id = socket_mode.send_envelope("interactive", click)
        assert socket_mode.wait_for_ack(click_id, timeout=10) == {"envelope_id": click_id}
        # Agent 2 reacts :two: on Draft B: an `events_api` envelope.
        react = event_payload(
            reaction_event("reaction_added", "UAGENT2", "two", channel, b.vote_ts), BOT_USER_ID
        )
        react_id = socket_mode.send_envelope("events_api", react)
        assert socket_mode.wait_for_ack(react_id, timeout=10) == {"envelope_id": react_id}

        wait_until(lambda: len(app.store.votes()) == 2, what="two votes")
        votes = {(v.draft_id, v.rater, v.score, v.source, v.model) for v in app.store.votes()}
        assert votes == {
            (a.id, "UAGENT1", 4, "button", a.model),
            (b.id, "UAGENT2", 2, "reaction", b.model),
        }
        wait_until(lambda: len(slack.calls_to("chat.update")) >= updates_before + 2, what="chat.update")
        updated = {c.params["ts"]: c for c in slack.calls_to("chat.update")[updates_before:]}
        assert set(updated) == {a.vote_ts, b.vote_ts}
        for ts in (a.vote_ts, b.vote_ts):
            assert "Rated by 1 agent" in json.dumps(updated[ts].params["blocks"])
            assert "Rated by 1 agent" in json.dumps(slack.find_message(channel, ts)["blocks"])

        wait_until(lambda: len(slack.calls_to("chat.postEphemeral")) == 2, what="two ephemerals")
        ephemerals = {e["user"]: e for e in slack.ephemerals}
        assert ephemerals["UAGENT1"]["text"] == vote_confirmation(a.label, 4)
        assert ephemerals["UAGENT2"]["text"] == reason_picker(b.label, 2, b.id)[0]  # a 2 asks why
        assert "vote_reason" in json.dumps(ephemerals["UAGENT2"]["blocks"])
        for ephemeral in ephemerals.values():
            assert ephemeral["channel"] == channel and ephemeral["thread_ts"] == parent_ts
        # Bolt reached Slack only with the bot token; the app-level token opened the socket only.
        assert {c.token for c in slack.calls if c.method != "apps.connections.open"} == {BOT_TOKEN}
        assert socket_mode.handshake_failures == [] and socket_mode.connections_total == 1
    finally:
        _stop_within(app, 15)
    socket_mode.wait_for_disconnect(timeout=5)
    leftover = [t.name for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    # Allowed: Bolt's idle listener pool, and the fakes' HTTP handlers holding keep-alive
    # connections. Not allowed: the socket client's runners, the worker, the scheduler.
    assert all(n.startswith("ThreadPoolExecutor") or "process_request_thread" in n for n in leftover), (
        leftover
    )


def _record_handled_reactions(app, monkeypatch) -> list[str]:
    """The message ts of each reaction_added whose store step has run (before the event's ack)."""
    handled: list[str] = []
    original = app.actions.record_reaction

    def recording(user, reaction, item_type, channel, ts):
        try:
            return original(user, reaction, item_type, channel, ts)
        finally:
            handled.append(ts)

    monkeypatch.setattr(app.actions, "record_reaction", recording)
    return handled


def test_socket_mode_webhook_intake_and_reconnects(tmp_path, fakes, monkeypatch):
    socket_mode, slack, zendesk = fakes
    app = _started(write_config(tmp_path, slack, zendesk, None, intake="webhook"), StubBackend())
    handled = _record_handled_reactions(app, monkeypatch)
    try:
        socket_mode.wait_for_connection(timeout=10)
        # Webhook intake needs the web server, but it must not take Slack requests in socket mode.
        assert app.web is not None
        base = f"http://127.0.0.1:{app.web.port}"
        assert requests.post(f"{base}/slack/events", data=b"{}", timeout=5).status_code == 404
        assert requests.get(f"{base}/healthz", timeout=5).json()["ok"] is True

        # Slack asks for a refresh: the client opens a new URL and drops the old connection.
        assert socket_mode.send_disconnect("refresh_requested") == 1
        socket_mode.wait_for_connection(timeout=10, count=2)
        wait_until(lambda: socket_mode.open_connections == 1, timeout=10, what="old connection closed")
        assert len(slack.calls_to("apps.connections.open")) == 2

        # Slack drops the connection outright: the client reconnects on the close frame.
        assert socket_mode.drop_connections() == 1
        socket_mode.wait_for_connection(timeout=20, count=3)  # the monitor: <= ping_interval (10 s)
        assert [c.token for c in slack.calls_to("apps.connections.open")] == [APP_TOKEN] * 3

        # Still served after both reconnects: an unknown message's reaction is acked, changes nothing.
        react = event_payload(reaction_event("reaction_added", "UAGENT2", "one", CHANNEL, "1.000100"))
        envelope_id = socket_mode.send_envelope("events_api", react)
        assert socket_mode.wait_for_ack(envelope_id, timeout=10) == {"envelope_id": envelope_id}
        assert handled == ["1.000100"]  # its store step ran before the ack (a vote would be on disk)
        assert app.after_ack.wait_idle(timeout=10)  # and what follows the ack has run too
        assert app.store.votes() == [] and not slack.calls_to("chat.postEphemeral")
    finally:
        _stop_within(app, 15)
    socket_mode.wait_for_disconnect(timeout=5)


def test_a_payload_of_the_wrong_shape_is_acked_records_nothing_and_logs_one_line(tmp_path, fakes, caplog):
    """Over HTTP it is answered 200 (tests/test_slack_payload_shapes.py); here it is acked, else Slack
    sends it again."""
    socket_mode, slack, zendesk = fakes
    app = _started(write_config(tmp_path, slack, zendesk, None), StubBackend())
    try:
        socket_mode.wait_for_connection(timeout=10)
        event = reaction_event("reaction_added", "UAGENT2", "one", CHANNEL, "1.000100")
        event["item"] = f"{CHANNEL}/1.000100"
        caplog.clear()
        with caplog.at_level(logging.INFO):
            envelope_id = socket_mode.send_envelope("events_api", event_payload(event))
            assert socket_mode.wait_for_ack(envelope_id, timeout=10) == {"envelope_id": envelope_id}
            assert app.after_ack.wait_idle(timeout=10)
        assert app.store.votes() == [] and not slack.calls_to("chat.postEphemeral")
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
            "ignored a Slack event_callback (reaction_added) from Socket Mode: event.item is a string, "
            "not an object"
        ]
    finally:
        _stop_within(app, 15)


def test_socket_mode_with_polling_can_still_serve_health_and_metrics(tmp_path, fakes):
    socket_mode, slack, zendesk = fakes
    app = _started(write_config(tmp_path, slack, zendesk, None, health_check=True), StubBackend())
    try:
        socket_mode.wait_for_connection(timeout=10)
        assert app.web is not None
        base = f"http://127.0.0.1:{app.web.port}"
        health = requests.get(f"{base}/healthz", timeout=5)
        assert health.status_code == 200, health.text
        report = health.json()
        assert report["ok"] is True and report["queued_jobs"] == 0 and report["failed_jobs"] == 0
        assert {name for name, part in report["checks"].items() if part["ok"]} == {
            "slack",
            "zendesk",
            "models",
            "worker",
            "queue",
        }
        metrics = requests.get(f"{base}/metrics", timeout=5)
        assert metrics.status_code == 200 and 'draftdesk_jobs{status="queued"} 0.0' in metrics.text
        # Only the health check: neither Slack nor Zendesk can reach the bot through this server.
        assert requests.post(f"{base}/slack/events", data=b"{}", timeout=5).status_code == 404
        assert requests.post(f"{base}/zendesk/webhook", data=b"{}", timeout=5).status_code == 404
    finally:
        _stop_within(app, 15)


def test_wrong_app_token_is_refused(tmp_path, fakes):
    socket_mode, slack, zendesk = fakes
    app = build(
        load_settings(
            write_config(tmp_path, slack, zendesk, None),
            env={**SECRETS, "SLACK_APP_TOKEN": "xapp-1-wrong"},
        ),
        StubBackend(),
    )
    with pytest.raises(StartupError, match=r"invalid_auth.*SLACK_APP_TOKEN"):
        app.start()  # stops what it started before raising
    assert socket_mode.connections_total == 0
    assert not app.scheduler.running and not any(t.is_alive() for t in app._threads)
    assert not slack.calls_to("chat.postMessage")


def test_fake_slack_apps_connections_open_tokens():
    with SocketModeServer() as socket_mode, FakeSlack() as slack:
        client = WebClient(base_url=slack.api_url)
        with pytest.raises(SlackApiError) as detached:
            client.apps_connections_open(app_token="xapp-1-a")
        assert detached.value.response["error"] == "socket_mode_not_enabled"
        slack.attach_socket_mode(socket_mode)
        with pytest.raises(SlackApiError) as bot_token:
            client.apps_connections_open(app_token="xoxb-not-an-app-token")
        assert bot_token.value.response["error"] == "not_allowed_token_type"
        first = client.apps_connections_open(app_token="xapp-1-a")["url"]
        second = client.apps_connections_open(app_token="xapp-1-a")["url"]
        assert first.startswith(f"ws://127.0.0.1:{socket_mode.port}/link/?ticket=") and first != second


# ---------------------------------------------------------------------- the WebSocket server itself


def _raw_connect(url: str) -> tuple[socket.socket, int, bytes]:
    """A minimal WebSocket client: (socket, HTTP status, bytes read past the response head)."""
    host_port, _, path = url[len("ws://") :].partition("/")
    host, _, port = host_port.partition(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    if status == 101:
        assert f"Sec-WebSocket-Accept: {websocket_accept(key)}".encode() in head
    return sock, status, rest


def _read_frame(sock: socket.socket, buffer: bytes) -> tuple[int, bytes, bytes]:
    """(opcode, payload, leftover) of one unmasked server frame."""

    def need(n: int) -> None:
        nonlocal buffer
        while len(buffer) < n:
            chunk = sock.recv(4096)
            assert chunk, "connection closed"
            buffer += chunk

    need(2)
    assert not buffer[1] & 0x80, "server frames must not be masked"
    opcode, length, offset = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
    if length == 126:
        need(4)
        (length,), offset = struct.unpack("!H", buffer[2:4]), 4
    elif length == 127:
        need(10)
        (length,), offset = struct.unpack("!Q", buffer[2:10]), 10
    need(offset + length)
    return opcode, buffer[offset : offset + length], buffer[offset + length :]


def test_server_handshake_ping_fragments_and_close():
    with SocketModeServer(app_id="A0OTHER") as server:
        sock, status, _ = _raw_connect(server.url.replace("ticket=", "ticket=forged"))
        assert status == 401 and server.handshake_failures == [(401, "Unauthorized")]
        sock.close()

        sock, status, rest = _raw_connect(server.issue_url())
        assert status == 101
        opcode, payload, rest = _read_frame(sock, rest)
        hello = json.loads(payload)
        assert opcode == OP_TEXT and hello["type"] == "hello" and hello["num_connections"] == 1
        assert hello["connection_info"] == {"app_id": "A0OTHER"} and "host" in hello["debug_info"]
        server.wait_for_connection()

        mask = os.urandom(4)
        sock.sendall(encode_frame(0x9, b"are you there", mask=mask))
        opcode, payload, rest = _read_frame(sock, rest)
        assert (opcode, payload) == (OP_PONG, b"are you there")

        big = "x" * 70_000  # 64-bit length on the way out
        envelope_id = server.send_envelope("slash_commands", {"text": big}, accepts_response_payload=True)
        opcode, payload, rest = _read_frame(sock, rest)
        envelope = json.loads(payload)
        assert envelope["envelope_id"] == envelope_id and envelope["payload"]["text"] == big
        assert envelope["accepts_response_payload"] is True and "retry_attempt" not in envelope

        ack = json.dumps({"envelope_id": envelope_id, "payload": {"text": "ok"}}).encode()
        half = len(ack) // 2  # a fragmented message: text frame + continuation frame
        sock.sendall(encode_frame(OP_TEXT, ack[:half], fin=False, mask=mask))
        sock.sendall(encode_frame(0x0, ack[half:], mask=mask))
        assert server.wait_for_ack(envelope_id) == {"envelope_id": envelope_id, "payload": {"text": "ok"}}
        with pytest.raises(TimeoutError):
            server.wait_for_ack("never-sent", timeout=0.1)

        sock.sendall(encode_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye", mask=mask))
        opcode, payload, rest = _read_frame(sock, rest)
        assert opcode == OP_CLOSE and struct.unpack("!H", payload[:2]) == (1000,)
        server.wait_for_disconnect()
        sock.close()
        with pytest.raises(ConnectionError):
            server.send_envelope("events_api", {})

        sock, status, rest = _raw_connect(server.url)
        server.wait_for_connection(count=2)
        sock.sendall(encode_frame(OP_TEXT, b'{"unmasked": true}'))  # clients must mask
        opcode, payload, rest = _read_frame(sock, rest)  # the hello
        opcode, payload, rest = _read_frame(sock, rest)
        assert opcode == OP_CLOSE and struct.unpack("!H", payload[:2]) == (1002,)
        server.wait_for_disconnect()
        sock.close()

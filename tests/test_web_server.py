"""The web server under load and at shutdown, over real HTTP on loopback: a Slack click is acked
once its vote is in the store, without waiting for a stuck Slack (the message update comes after
the ack), and stop() frees the port."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import requests
from slack_bolt.authorization import AuthorizeResult

from bot.operations.web import DraftdeskWSGI, WebServer
from bot.slack.blocks import draft_message
from bot.slack.listeners import AfterAck, DraftActions, new_bolt_app, register_listeners
from bot.slack.sending import SendFlow
from bot.store.memory import MemoryStore
from integrations.standins.slack_requests import block_action_body, signed_headers
from tests.recording_poster import RecordingPoster

SECRET = "slack-signing-secret-for-tests"
CHANNEL = "CDRAFTS"
FORM = "application/x-www-form-urlencoded"


class StuckSlack(RecordingPoster):
    """A chat whose message updates wait until the test lets them go (Slack slow or rate-limited)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.waiting = 0

    def update(self, channel: str, ts: str, text: str, blocks: list[dict] | None = None) -> None:
        self.waiting += 1
        self.release.wait(timeout=60)
        super().update(channel, ts, text, blocks)


class NoZendesk:
    """Neither Zendesk nor modals are used here: any call fails the test."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"nothing here calls {name}")


@dataclass
class Bot:
    server: WebServer
    store: MemoryStore
    slack: StuckSlack
    after_ack: AfterAck
    parent_ts: str
    vote_ts: str

    def click(self, user: str, score: int = 4, element: dict | None = None) -> tuple[int, float]:
        action_id = element.pop("action_id") if element else f"rate_{score}"
        body = block_action_body(user, CHANNEL, self.vote_ts, self.parent_ts, action_id, "t7r1A", element)
        started = time.monotonic()
        response = requests.post(
            f"http://127.0.0.1:{self.server.port}/slack/events",
            data=body.encode(),
            headers=signed_headers(SECRET, body, FORM),
            timeout=10,
        )
        return response.status_code, time.monotonic() - started


@pytest.fixture
def bot() -> Iterator[Bot]:
    store, slack = MemoryStore(), StuckSlack()
    parent_ts = slack.post_parent(CHANNEL, "New ticket #7")
    store.save_ticket_thread(7, CHANNEL, parent_ts)
    store.create_round(7, 70, [("A", "llama-ft"), ("B", "gptj-ft"), ("C", "llama")])
    store.save_generated("t7r1A", "Please restart the backup.", None)
    [(fallback, blocks)] = draft_message("A", "Please restart the backup.", "t7r1A", rated_count=0)
    vote_ts = slack.post_in_thread(CHANNEL, parent_ts, fallback, blocks)
    store.add_draft_message("t7r1A", CHANNEL, vote_ts)

    def authorize(**_: object) -> AuthorizeResult:  # no Slack API call: nothing here needs one
        return AuthorizeResult(enterprise_id=None, team_id="T0DEMO", bot_token="xoxb-test", bot_user_id="UB")

    bolt = new_bolt_app(None, SECRET, verify_requests=True, authorize=authorize)
    after_ack = AfterAck(threads=4)
    sending = SendFlow(store, slack, NoZendesk(), NoZendesk())  # type: ignore[arg-type]
    register_listeners(bolt, DraftActions(store, slack), after_ack, sending)
    server = WebServer(DraftdeskWSGI(bolt, None, dict, 100_000, SECRET), "127.0.0.1", 0, threads=4)
    server.start()
    yield Bot(server, store, slack, after_ack, parent_ts, vote_ts)
    slack.release.set()
    server.stop()
    after_ack.shutdown()


def test_a_click_is_acked_once_its_vote_is_stored_without_waiting_for_a_stuck_slack(bot: Bot) -> None:
    users = [f"UAGENT{n}" for n in range(20)]  # more than every thread pool involved
    with ThreadPoolExecutor(max_workers=20) as clients:
        answers = list(clients.map(bot.click, users))
    assert [status for status, _ in answers] == [200] * 20
    assert max(seconds for _, seconds in answers) < 2.0  # Slack gives up at 3 s
    # Every vote Slack was told about is stored already; the message updates still wait for Slack.
    assert sorted(v.rater for v in bot.store.votes()) == sorted(users)
    assert bot.slack.waiting >= 1 and not bot.slack.calls_to("update")

    bot.slack.release.set()
    assert bot.after_ack.wait_idle(timeout=30)
    assert len(bot.slack.calls_to("update")) == 20


def test_one_agents_second_click_replaces_the_first(bot: Bot) -> None:
    assert bot.click("UAGENT1", score=2)[0] == 200
    assert [(v.rater, v.score) for v in bot.store.votes()] == [("UAGENT1", 2)]
    assert bot.click("UAGENT1", score=5)[0] == 200
    assert [(v.rater, v.score) for v in bot.store.votes()] == [("UAGENT1", 5)]
    bot.slack.release.set()
    assert bot.after_ack.wait_idle(timeout=30)


def test_a_reason_picked_or_typed_in_the_ephemeral_picker_reaches_the_vote(bot: Bot) -> None:
    bot.slack.release.set()  # Slack answers at once here
    assert bot.click("UAGENT1", score=2)[0] == 200
    assert bot.after_ack.wait_idle(timeout=30)
    picked = {
        "action_id": "vote_reason",
        "type": "static_select",
        "block_id": "vote_reason:t7r1A",
        "selected_option": {"text": {"type": "plain_text", "text": "Tone"}, "value": "tone"},
    }
    assert bot.click("UAGENT1", element=picked)[0] == 200
    assert bot.after_ack.wait_idle(timeout=30)
    assert [(v.score, v.reason) for v in bot.store.votes()] == [(2, "tone")]
    typed = {
        "action_id": "vote_reason_note",
        "type": "plain_text_input",
        "block_id": "vote_reason_note:t7r1A",
        "value": "links a retired article",
    }
    assert bot.click("UAGENT1", element=typed)[0] == 200
    assert bot.after_ack.wait_idle(timeout=30)
    assert [(v.reason, v.reason_note) for v in bot.store.votes()] == [("other", "links a retired article")]


def test_stop_ends_the_server_thread_and_frees_the_port() -> None:
    server = WebServer(DraftdeskWSGI(None, None, lambda: {"ok": True}, 1024), "127.0.0.1", 0)
    server.start()
    port, thread = server.port, server.thread
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json() == {"ok": True}
    server.stop()
    assert thread is not None and not thread.is_alive()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    WebServer(DraftdeskWSGI(None, None, dict, 1024), "127.0.0.1", 0).stop()  # never started: no error


def test_a_port_in_use_is_an_error_at_construction_and_leaves_nothing_open() -> None:
    first = WebServer(DraftdeskWSGI(None, None, dict, 1024), "127.0.0.1", 0)
    open_before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    try:
        with pytest.raises(OSError):
            WebServer(DraftdeskWSGI(None, None, dict, 1024), "127.0.0.1", first.port)
        if open_before is not None:
            assert len(os.listdir("/proc/self/fd")) == open_before
    finally:
        first.stop()

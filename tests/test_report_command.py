"""`/draftdesk report` over signed HTTP through the real Bolt app: recipients get the report by DM
with its chart, anyone else a refusal that names no model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from slack_bolt.authorization import AuthorizeResult

from bot.config import DigestSettings
from bot.operations.web import DraftdeskWSGI, WebServer
from bot.slack.commands import REFUSAL, USAGE, parse_report_request, register_report_command
from bot.slack.digest import DigestService
from bot.slack.listeners import AfterAck, new_bolt_app
from bot.store.memory import MemoryStore
from core.domain import Vote
from integrations.standins.slack_requests import signed_headers, slash_command_body
from tests.recording_poster import RecordingPoster

SECRET = "slack-signing-secret-for-tests"
LEAD, AGENT = "ULEAD", "UAGENT"
NOW = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)


@pytest.fixture
def bot() -> Iterator[tuple[str, RecordingPoster, AfterAck]]:
    store, slack = MemoryStore(), RecordingPoster()
    for days_ago, score, model, reason in [
        (2, 5, "llama-ft", None),
        (3, 1, "llama", "tone"),
        (20, 4, "llama", None),
    ]:
        at = NOW - timedelta(days=days_ago)
        store.record_vote(Vote(1, f"t{days_ago}r1A", model, "U1", score, "button", at, reason))
    digest = DigestService(
        store,
        slack,
        DigestSettings(users=(LEAD,)),
        ["llama-ft", "llama"],
        clock=lambda: NOW,
        untuned=["llama"],
    )

    def authorize(**_: object) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id="T0DEMO", bot_token="xoxb-test", bot_user_id="UB")

    bolt = new_bolt_app(None, SECRET, verify_requests=True, authorize=authorize)
    after_ack = AfterAck(threads=2)
    register_report_command(bolt, digest.send_report, digest.settings.users, after_ack)
    server = WebServer(DraftdeskWSGI(bolt, None, dict, 100_000, SECRET), "127.0.0.1", 0, threads=2)
    server.start()
    yield f"http://127.0.0.1:{server.port}/slack/events", slack, after_ack
    server.stop()
    after_ack.shutdown()


def command(url: str, user: str, text: str) -> requests.Response:
    body = slash_command_body(user, "CDRAFTS", "/draftdesk", text)
    headers = signed_headers(SECRET, body, "application/x-www-form-urlencoded")
    return requests.post(url, data=body.encode(), headers=headers, timeout=10)


def test_a_recipient_gets_the_report_of_the_period_by_dm_with_its_chart(bot) -> None:
    url, slack, after_ack = bot
    answer = command(url, LEAD, "report month")
    assert answer.status_code == 200 and "on its way" in answer.text
    assert after_ack.wait_idle(timeout=30)
    [dm] = slack.calls_to("dm")
    assert dm.channel == f"D{LEAD}" and "last 30 days" in dm.text and "3 ratings" in dm.text
    assert "Why 1s and 2s failed" in str(dm.blocks) and "Tone" in str(dm.blocks)
    [chart] = slack.calls_to("dm_upload")
    assert chart.user == LEAD and slack.files[-1][2].startswith(b"\x89PNG")
    command(url, LEAD, "report")  # the week: the vote of 20 days ago is not in it
    assert after_ack.wait_idle(timeout=30)
    assert "2 ratings" in slack.calls_to("dm")[-1].text


def test_anyone_else_is_refused_without_a_model_name_and_nothing_is_sent(bot) -> None:
    url, slack, after_ack = bot
    answer = command(url, AGENT, "report")
    assert answer.status_code == 200 and "only for the digest's recipients" in answer.text
    assert "llama" not in answer.text
    assert command(url, LEAD, "reprot").text.count("Usage") == 1
    assert after_ack.wait_idle(timeout=30)
    assert slack.calls == []


@pytest.mark.parametrize(
    ("text", "days"),
    [("report", 7), ("Report week", 7), ("report month", 30), ("report year", None), ("", None)],
)
def test_report_periods(text: str, days: int | None) -> None:
    request = parse_report_request(text)
    assert (request[0].days if request else None) == days


def test_the_refusal_says_how_to_get_access() -> None:
    assert "[digest] users" in REFUSAL and "/draftdesk report month" in USAGE

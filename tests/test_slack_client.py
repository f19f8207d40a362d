"""SlackPoster and make_web_client against the loopback fake, through a real slack_sdk WebClient."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_handlers

from bot.slack.blocks import draft_message
from core.domain import ChatUser, MessageMark
from integrations.slack import SlackError, SlackPoster, make_web_client
from integrations.standins.slack_server import BOT_USER_ID, FakeSlack

TOKEN = "xoxb-test-token"
CHANNEL = "C0DRAFTS01"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def poster(slack: FakeSlack) -> SlackPoster:
    return SlackPoster(make_web_client(TOKEN, base_url=slack.api_url, max_retries=2))


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack_sdk adds up to 1 s of random jitter to each retry wait: take it out to keep tests fast."""
    monkeypatch.setattr(builtin_handlers.random, "random", lambda: 0.0)


def test_post_parent_and_thread_reply(slack: FakeSlack, poster: SlackPoster) -> None:
    parent_ts = poster.post_parent(
        CHANNEL, "New ticket #1", [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}}]
    )
    text, blocks = draft_message("A", "Hello there", "t1-r1-A", 0)[0]
    reply_ts = poster.post_in_thread(CHANNEL, parent_ts, text, blocks)
    assert float(reply_ts) > float(parent_ts)

    calls = slack.calls_to("chat.postMessage")
    assert len(calls) == 2
    assert calls[0].params["text"] == "New ticket #1" and "thread_ts" not in calls[0].params
    assert calls[1].params["thread_ts"] == parent_ts
    assert calls[1].params["text"] == text and calls[1].params["blocks"] == blocks
    assert all(c.authorization == f"Bearer {TOKEN}" for c in calls)
    assert calls[1].params["unfurl_links"] is False

    thread = slack.thread(CHANNEL, parent_ts)
    assert [m["ts"] for m in thread] == [parent_ts, reply_ts]
    assert slack.replies(CHANNEL, parent_ts)[0]["blocks"] == blocks


def test_update_changes_message_in_place(slack: FakeSlack, poster: SlackPoster) -> None:
    ts = poster.post(CHANNEL, "before", None)
    poster.update(CHANNEL, ts, "after", [{"type": "divider"}])
    [message] = slack.messages[CHANNEL]
    assert message["text"] == "after" and message["blocks"] == [{"type": "divider"}]
    call = slack.calls_to("chat.update")[0]
    assert call.params["channel"] == CHANNEL and call.params["ts"] == ts


def test_ephemeral(slack: FakeSlack, poster: SlackPoster) -> None:
    poster.ephemeral(CHANNEL, "U0AGENT01", "You rated Draft A: 4", thread_ts="1700000000.000100")
    [call] = slack.calls_to("chat.postEphemeral")
    assert call.params["user"] == "U0AGENT01"
    assert call.params["thread_ts"] == "1700000000.000100"
    assert slack.ephemerals[0]["text"] == "You rated Draft A: 4"


def test_429_is_retried_after_retry_after(slack: FakeSlack, poster: SlackPoster, no_jitter: None) -> None:
    slack.fail_next("chat.postMessage", status=429, headers={"Retry-After": "1"})
    started = time.monotonic()
    ts = poster.post(CHANNEL, "hello", None)
    elapsed = time.monotonic() - started
    assert ts
    calls = slack.calls_to("chat.postMessage")
    assert [c.status for c in calls] == [429, 200]
    assert 0.9 <= elapsed < 3  # waited for Retry-After (1 s), not longer
    assert len(slack.messages[CHANNEL]) == 1


def test_500_is_retried(slack: FakeSlack, poster: SlackPoster, no_jitter: None) -> None:
    slack.fail_next("chat.postMessage", status=500)
    ts = poster.post(CHANNEL, "hello", None)
    assert ts
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [500, 200]


def test_retries_give_up(slack: FakeSlack, poster: SlackPoster, no_jitter: None) -> None:
    slack.fail_next("chat.update", status=503, times=10)
    with pytest.raises(SlackError) as info:
        poster.update(CHANNEL, "1700000000.000100", "x", None)
    assert len(slack.calls_to("chat.update")) == 3  # the call and max_retries=2 retries
    assert info.value.error == "internal_error"


def test_not_in_channel_has_hint(slack: FakeSlack, poster: SlackPoster) -> None:
    slack.error_next("chat.postMessage", "not_in_channel")
    with pytest.raises(SlackError) as info:
        poster.post_parent(CHANNEL, "New ticket", None)
    assert info.value.error == "not_in_channel"
    assert "/invite @draftdesk" in str(info.value)
    assert len(slack.calls_to("chat.postMessage")) == 1  # a Slack error is not retried


@pytest.mark.parametrize(
    ("error", "extra", "hint_part"),
    [
        ("channel_not_found", {}, "channel ID"),
        ("invalid_auth", {}, "SLACK_BOT_TOKEN"),
        ("not_authed", {}, "SLACK_BOT_TOKEN"),
        ("missing_scope", {"needed": "chat:write", "provided": "channels:read"}, "chat:write"),
    ],
)
def test_common_errors_have_hints(
    slack: FakeSlack, poster: SlackPoster, error: str, extra: dict, hint_part: str
) -> None:
    slack.error_next("chat.postMessage", error, **extra)
    with pytest.raises(SlackError) as info:
        poster.post(CHANNEL, "x", None)
    assert info.value.error == error
    assert info.value.hint and hint_part in info.value.hint


def test_dm_opens_conversation_then_posts(slack: FakeSlack, poster: SlackPoster) -> None:
    poster.dm("U0AGENT01", "Weekly digest", [{"type": "divider"}])
    assert [c.method for c in slack.calls] == ["conversations.open", "chat.postMessage"]
    opened = slack.calls[0]
    assert opened.params["users"] == "U0AGENT01"
    dm_channel = opened.response["channel"]["id"]
    assert dm_channel.startswith("D")
    assert slack.calls[1].params["channel"] == dm_channel
    assert slack.messages[dm_channel][0]["text"] == "Weekly digest"


def test_connection_error_surfaces_as_slack_error() -> None:
    with FakeSlack() as fake:
        url = fake.api_url
    poster = SlackPoster(make_web_client(TOKEN, base_url=url, max_retries=0, timeout=2))
    with pytest.raises(SlackError) as info:
        poster.post(CHANNEL, "x", None)
    assert info.value.error == "connection_error"


def test_fake_basics(slack: FakeSlack) -> None:
    client = WebClient(token=TOKEN, base_url=slack.api_url)
    auth = client.auth_test()
    assert auth["user_id"] == BOT_USER_ID and auth["bot_id"] and auth["team_id"]
    before = time.time()
    first = client.chat_postMessage(channel=CHANNEL, text="a")["ts"]
    second = client.chat_postMessage(channel=CHANNEL, text="b")["ts"]
    # like Slack's: the time of posting with six decimals, each one later than the last
    assert abs(float(first) - before) < 60 and len(first.split(".")[1]) == 6
    assert float(second) > float(first)
    client.reactions_add(channel=CHANNEL, timestamp=first, name="four")
    assert slack.reactions == [{"channel": CHANNEL, "timestamp": first, "name": "four"}]
    # form-encoded bodies with JSON-looking values are decoded too
    client.api_call(
        "chat.postMessage", params={"channel": CHANNEL, "text": "c", "blocks": '[{"type": "divider"}]'}
    )
    assert slack.messages[CHANNEL][-1]["blocks"] == [{"type": "divider"}]


def test_unknown_method(slack: FakeSlack) -> None:
    client = WebClient(token=TOKEN, base_url=slack.api_url)
    with pytest.raises(Exception) as info:
        client.api_call("no.such.method")
    assert "unknown_method" in str(info.value)


def test_on_call_hook_and_token_check() -> None:
    seen: list[str] = []
    with FakeSlack(on_call=lambda call: seen.append(call.method), token=TOKEN) as fake:
        good = SlackPoster(make_web_client(TOKEN, base_url=fake.api_url))
        good.post(CHANNEL, "x", None)
        bad = SlackPoster(make_web_client("xoxb-wrong", base_url=fake.api_url))
        with pytest.raises(SlackError) as info:
            bad.post(CHANNEL, "x", None)
    assert info.value.error == "invalid_auth"
    assert seen == ["chat.postMessage", "chat.postMessage"]


def test_files_upload_v2(slack: FakeSlack) -> None:
    client = WebClient(token=TOKEN, base_url=slack.api_url)
    response = client.files_upload_v2(
        channel=CHANNEL, content="a,b\n1,2\n", filename="votes.csv", title="Votes"
    )
    file_id = response["file"]["id"]
    assert slack.files[file_id]["data"] == b"a,b\n1,2\n"
    assert slack.files[file_id]["channel"] == CHANNEL


def test_bolt_app_starts_against_fake(slack: FakeSlack) -> None:
    from slack_bolt import App

    app = App(signing_secret="secret", client=make_web_client(TOKEN, base_url=slack.api_url))
    assert [c.method for c in slack.calls] == ["auth.test"]  # Bolt verifies the token at start
    app.client.chat_postMessage(channel=CHANNEL, text="hi")
    assert slack.messages[CHANNEL][0]["text"] == "hi"


def test_a_429_that_outlasts_the_retries_carries_slacks_retry_after(slack: FakeSlack) -> None:
    poster = SlackPoster(make_web_client(TOKEN, base_url=slack.api_url, max_retries=0))
    slack.fail_next("chat.postMessage", status=429, headers={"Retry-After": "120"})
    with pytest.raises(SlackError) as info:
        poster.post(CHANNEL, "hello", None)
    assert info.value.retry_after == 120.0  # the worker waits at least this long before trying again


def test_upload_shares_a_file_in_a_channel_and_in_a_dm(slack: FakeSlack, poster: SlackPoster) -> None:
    poster.upload(CHANNEL, "chart.png", b"\x89PNG fake", "Weekly chart")
    poster.dm_upload("U0LEAD001", "chart.png", b"\x89PNG fake", "Weekly chart")
    channel_file, dm_file = slack.files.values()
    assert channel_file["channel"] == CHANNEL and channel_file["data"] == b"\x89PNG fake"
    assert channel_file["title"] == "Weekly chart" and channel_file["filename"] == "chart.png"
    assert dm_file["channel"].startswith("D")  # the DM channel conversations.open gave
    assert slack.calls_to("conversations.open")[0].params["users"] == "U0LEAD001"


def test_views_open_update_and_user_profile(slack: FakeSlack, poster: SlackPoster) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Send Draft A"}, "blocks": []}
    view_id, view_hash = poster.open_view(f"{int(time.time())}.trigger", view)
    assert slack.views[view_id]["hash"] == view_hash
    poster.update_view(view_id, {**view, "blocks": [{"type": "divider"}]}, view_hash)
    assert slack.views[view_id]["blocks"] == [{"type": "divider"}]
    with pytest.raises(SlackError) as stale:  # someone replaced it since: the old hash is refused
        poster.update_view(view_id, view, view_hash)
    assert stale.value.code == "hash_conflict"
    slack.add_user("UGRACE", "Grace Hopper", "grace@example.com")
    slack.add_user("UNOMAIL", "No Scope")  # an app without users:read.email sees no address
    assert poster.user_profile("UGRACE") == ChatUser("UGRACE", "Grace Hopper", "grace@example.com")
    assert poster.user_profile("UNOMAIL") == ChatUser("UNOMAIL", "No Scope", "")


def test_an_expired_trigger_cannot_open_a_modal(slack: FakeSlack, poster: SlackPoster) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Late"}, "blocks": []}
    with pytest.raises(SlackError) as late:
        poster.open_view(f"{int(time.time()) - 10}.trigger", view)
    assert late.value.code == "expired_trigger_id" and "click the button again" in str(late.value)


def test_marks_travel_as_message_metadata_and_are_found_again(slack: FakeSlack, poster: SlackPoster) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    parent = poster.post_parent(CHANNEL, "New ticket #7", mark=MessageMark.parent(7))
    poster.post_parent(CHANNEL, "unmarked")
    reply = poster.post_in_thread(CHANNEL, parent, "Draft A", mark=MessageMark.draft_part(7, "t7r1A", 0))
    notice = poster.post_in_thread(CHANNEL, parent, "1 of 3", mark=MessageMark.notice(7, "t7r1", "failures"))
    sent = slack.calls_to("chat.postMessage")[0].params["metadata"]
    assert sent == {"event_type": "draftdesk_ticket", "event_payload": {"ticket_id": "7"}}  # Slack's shape
    assert poster.marked_in_thread(CHANNEL, parent) == {
        MessageMark.parent(7): parent,
        MessageMark.draft_part(7, "t7r1A", 0): reply,
        MessageMark.notice(7, "t7r1", "failures"): notice,
    }
    assert poster.marked_in_channel(CHANNEL, since) == {MessageMark.parent(7): parent}  # no replies
    assert poster.marked_in_channel(CHANNEL, datetime.now(UTC) + timedelta(seconds=5)) == {}
    for call in slack.calls_to("conversations.replies") + slack.calls_to("conversations.history"):
        assert call.params["include_all_metadata"] in ("1", "true", True)


def test_the_stand_in_reads_back_metadata_only_when_asked_and_pages_like_slack(slack: FakeSlack) -> None:
    client = WebClient(token=TOKEN, base_url=slack.api_url)
    metadata = {"event_type": "draftdesk_ticket", "event_payload": {"ticket_id": "1"}}
    parent = client.chat_postMessage(channel=CHANNEL, text="p", metadata=metadata)["ts"]
    for i in range(5):
        client.chat_postMessage(channel=CHANNEL, text=f"r{i}", thread_ts=parent)
    plain = client.conversations_replies(channel=CHANNEL, ts=parent)
    assert "metadata" not in plain["messages"][0]
    full = client.conversations_replies(channel=CHANNEL, ts=parent, include_all_metadata=True)
    assert full["messages"][0]["metadata"] == metadata
    texts, cursor = [], None
    while True:
        page = client.conversations_replies(channel=CHANNEL, ts=parent, limit=2, cursor=cursor)
        texts += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert texts == ["p", "r0", "r1", "r2", "r3", "r4"]  # the parent first, then oldest first
    history = client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    assert [m["text"] for m in history["messages"]] == ["p"]  # replies stay in their thread
    bad = {"event_type": "x", "event_payload": {"nested": {"a": 1}}}
    with pytest.raises(SlackApiError) as info:
        client.chat_postMessage(channel=CHANNEL, text="bad", metadata=bad)
    assert info.value.response["error"] == "invalid_metadata_format"


def test_a_paginated_look_up_reads_every_page(slack: FakeSlack, poster: SlackPoster) -> None:
    parent = poster.post_parent(CHANNEL, "New ticket #9", mark=MessageMark.parent(9))
    for part in range(205):  # more than one page of 200
        poster.post_in_thread(CHANNEL, parent, f"part {part}", mark=MessageMark.draft_part(9, "t9r1A", part))
    found = poster.marked_in_thread(CHANNEL, parent)
    assert len(found) == 206 and len(slack.calls_to("conversations.replies")) == 2


def test_message_links_use_the_workspace_address_and_wait_for_it(
    slack: FakeSlack, poster: SlackPoster
) -> None:
    slack.error_next("auth.test", "fatal_error")
    assert poster.message_link("C1", "1700000000.000100") is None  # not known: lines stay plain text
    assert poster.message_link("C1", "1700000000.000100") is None  # and not asked again per line
    assert len(slack.calls_to("auth.test")) == 1
    poster._workspace_unknown_until = 0.0  # a while later
    assert (
        poster.message_link("C1", "1700000000.000100")
        == "https://fake-team.slack.com/archives/C1/p1700000000000100"
    )
    reply = poster.message_link("C1", "1700000001.000200", thread_ts="1700000000.000100")
    assert reply == (
        "https://fake-team.slack.com/archives/C1/p1700000001000200?thread_ts=1700000000.000100&cid=C1"
    )
    calls = len(slack.calls_to("auth.test"))
    poster.message_link("C2", "1700000002.000300")
    assert len(slack.calls_to("auth.test")) == calls  # asked once, not per message

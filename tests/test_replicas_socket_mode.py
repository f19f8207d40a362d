"""Two replicas in Slack Socket Mode on one PostgreSQL database (a real server): each opens its own
Socket Mode connection (Slack hands each event to one of an app's connections), a ticket is drafted
and posted once, and when one replica stops for an upgrade the other's connection takes the clicks."""

from __future__ import annotations

from pathlib import Path

from bot.config import load_settings
from draftdesk.app import build
from integrations.standins.slack_requests import block_action_payload
from tests.test_observability import WordsBackend
from tests.test_socket_mode import SECRETS, fakes, write_config  # noqa: F401  (fakes: a fixture)
from tests.waiting import drafts_posted, wait_until


def test_two_socket_mode_replicas_draft_once_and_either_takes_the_clicks(tmp_path: Path, fakes, postgres_url):  # noqa: F811
    socket_mode, slack, _zendesk = fakes
    config = write_config(tmp_path, slack, _zendesk, models=None)
    env = {**SECRETS, "DRAFTDESK_DATABASE_URL": postgres_url}
    apps = [build(load_settings(config, env=env), WordsBackend()) for _ in range(2)]
    for app in apps:
        app.start()
    try:
        socket_mode.wait_for_connection(count=2)  # one connection per replica
        store = apps[0].store
        assert store.enqueue(7, "test")
        wait_until(lambda: drafts_posted(store, 7), timeout=60, what="ticket 7 drafted")
        channel, parent_ts = store.ticket_thread(7)
        assert len([m for m in slack.messages[channel] if not m.get("thread_ts")]) == 1
        assert len(slack.replies(channel, parent_ts)) == 3
        draft = store.drafts_for_ticket(7)[0]

        def click(rater: str) -> None:
            socket_mode.send_envelope(
                "interactive",
                block_action_payload(rater, channel, draft.vote_ts, parent_ts, "rate_4", draft.id),
            )

        click("UAGENT1")  # to the newest connection: the second replica's
        wait_until(lambda: len(store.votes()) == 1, timeout=10, what="the first vote")
        apps[1].stop()  # upgraded: its connection closes, Slack sends to the one left
        wait_until(lambda: socket_mode.open_connections == 1, timeout=10, what="one connection left")
        click("UAGENT2")
        wait_until(lambda: len(store.votes()) == 2, timeout=10, what="the second vote")
        assert {v.rater for v in store.votes()} == {"UAGENT1", "UAGENT2"}
    finally:
        for app in apps:
            app.stop()

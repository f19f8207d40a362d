from datetime import UTC, datetime, timedelta

from bot.config import DigestSettings
from bot.digest import DigestService, digest_message, latest_due, trigger_for
from bot.stats import model_stats
from bot.store import Store
from core.domain import Vote
from integrations.slack import SlackPoster, make_web_client
from integrations.standins.slack_server import FakeSlack

SETTINGS = DigestSettings(
    day_of_week="mon", hour=9, timezone="Europe/Kyiv", channel="CDIGEST", users=("ULEAD",)
)
MONDAY_9_KYIV = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # 09:00 EET


def test_latest_due_follows_the_cron_in_its_time_zone():
    trigger = trigger_for(SETTINGS)
    assert latest_due(trigger, MONDAY_9_KYIV - timedelta(minutes=1)) == MONDAY_9_KYIV - timedelta(days=7)
    assert latest_due(trigger, MONDAY_9_KYIV + timedelta(hours=30)) == MONDAY_9_KYIV


def test_digest_posts_last_week_once_and_catches_up(tmp_path):
    store = Store(tmp_path / "s.json")
    in_week = MONDAY_9_KYIV - timedelta(days=2)
    store.record_vote(Vote(1, "t1r1A", "llama2-7b-ft", "U1", 5, "button", in_week))
    store.record_vote(Vote(1, "t1r1B", "llama2-7b", "U1", 1, "reaction", in_week))
    store.record_vote(Vote(2, "t2r1A", "llama2-7b", "U2", 4, "button", MONDAY_9_KYIV - timedelta(days=9)))
    now = [MONDAY_9_KYIV - timedelta(days=5)]  # first start, mid-week
    with FakeSlack() as slack:
        service = DigestService(
            store,
            SlackPoster(make_web_client("xoxb-t", slack.api_url)),
            SETTINGS,
            ["llama2-7b-ft", "gptj-6b-ft", "llama2-7b"],
            clock=lambda: now[0],
        )
        assert not service.run_due()  # a new install does not open with a digest
        assert not slack.calls_to("chat.postMessage")
        now[0] = MONDAY_9_KYIV + timedelta(days=2)  # the bot was down on Monday morning
        assert service.run_due()  # caught up at the next start
        assert not service.run_due()  # and only once
        posts = slack.calls_to("chat.postMessage")
        assert posts[0].params["channel"] == "CDIGEST"
        assert len(slack.calls_to("conversations.open")) == 1  # the team lead's DM
        text = str(posts[0].params["blocks"])
        assert "llama2-7b-ft" in text and "gptj-6b-ft" in text and "Table 1" in text and "Table 2" in text
        assert "n=1" in text  # the vote 9 days back belongs to the week before
        now[0] = MONDAY_9_KYIV + timedelta(days=7, minutes=1)
        assert service.run_due()  # next week's


def test_digest_message_respects_block_limits():
    votes = [Vote(1, f"d{i}", f"model-{i % 7}", "U", 1 + i % 5, "button", MONDAY_9_KYIV) for i in range(500)]
    _text, blocks = digest_message(model_stats(votes), MONDAY_9_KYIV - timedelta(days=7), MONDAY_9_KYIV)
    assert len(blocks) <= 50
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)

from datetime import UTC, datetime, timedelta

import pytest

from bot.config import DigestSettings
from bot.reporting.stats import model_stats
from bot.slack.digest import META_LAST_PERIOD_END, DigestService, digest_message, latest_due, trigger_for
from bot.store.memory import MemoryStore
from core.domain import Vote
from core.ports import ChatError
from tests.recording_poster import RecordingPoster

SETTINGS = DigestSettings(
    day_of_week="mon", hour=9, timezone="Europe/Kyiv", channel="CDIGEST", users=("ULEAD",)
)
MONDAY_9_KYIV = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # 09:00 EET


def test_latest_due_follows_the_cron_in_its_time_zone():
    trigger = trigger_for(SETTINGS)
    assert latest_due(trigger, MONDAY_9_KYIV - timedelta(minutes=1)) == MONDAY_9_KYIV - timedelta(days=7)
    assert latest_due(trigger, MONDAY_9_KYIV + timedelta(hours=30)) == MONDAY_9_KYIV


MODELS = ["llama2-7b-ft", "gptj-6b-ft", "llama2-7b"]


def test_digest_posts_last_week_once_and_catches_up():
    store = MemoryStore()
    in_week = MONDAY_9_KYIV - timedelta(days=2)
    store.record_vote(Vote(1, "t1r1A", "llama2-7b-ft", "U1", 5, "button", in_week))
    store.record_vote(Vote(1, "t1r1B", "llama2-7b", "U1", 1, "reaction", in_week))
    store.record_vote(Vote(2, "t2r1A", "llama2-7b", "U2", 4, "button", MONDAY_9_KYIV - timedelta(days=9)))
    now = [MONDAY_9_KYIV - timedelta(days=5)]  # first start, mid-week
    slack = RecordingPoster()
    service = DigestService(store, slack, SETTINGS, MODELS, clock=lambda: now[0])
    assert not service.run_due()  # a new install does not open with a digest
    assert slack.calls == []
    now[0] = MONDAY_9_KYIV + timedelta(days=2)  # the bot was down on Monday morning
    assert service.run_due()  # caught up at the next start
    assert not service.run_due()  # and only once
    [post] = slack.calls_to("post")
    assert post.channel == "CDIGEST"
    assert [dm.user for dm in slack.calls_to("dm")] == ["ULEAD"]  # the team lead's DM
    text = str(post.blocks)
    assert "llama2-7b-ft" in text and "gptj-6b-ft" in text and "Table 1" in text and "Table 2" in text
    assert "n=1" in text  # the vote 9 days back belongs to the week before
    now[0] = MONDAY_9_KYIV + timedelta(days=7, minutes=1)
    assert service.run_due()  # next week's
    assert len(slack.calls_to("post")) == 2


def _service_due_now(store, slack, settings=SETTINGS):
    store.set_meta(META_LAST_PERIOD_END, (MONDAY_9_KYIV - timedelta(days=7)).isoformat())
    return DigestService(store, slack, settings, MODELS, clock=lambda: MONDAY_9_KYIV + timedelta(hours=1))


def test_a_failed_channel_post_is_retried_at_the_next_run():
    store, slack = MemoryStore(), RecordingPoster()
    service = _service_due_now(store, slack)
    slack.fail_next("post", code="not_in_channel")
    with pytest.raises(ChatError):
        service.run_due()
    assert slack.calls == []  # nobody got this week's digest yet
    assert service.run_due()
    assert len(slack.calls_to("post")) == 1 and len(slack.calls_to("dm")) == 1
    assert datetime.fromisoformat(store.get_meta(META_LAST_PERIOD_END)) == MONDAY_9_KYIV


def test_one_unreachable_user_does_not_repeat_the_digest_for_everyone():
    store, slack = MemoryStore(), RecordingPoster()
    settings = DigestSettings(
        day_of_week="mon", hour=9, timezone="Europe/Kyiv", channel="CDIGEST", users=("UGONE", "ULEAD")
    )
    service = _service_due_now(store, slack, settings)
    slack.fail_next("dm", code="user_not_found")
    assert service.run_due()
    assert [dm.user for dm in slack.calls_to("dm")] == ["ULEAD"]
    assert not service.run_due()  # recorded as posted: the channel does not get it twice
    assert len(slack.calls_to("post")) == 1


def test_digest_message_respects_block_limits():
    votes = [Vote(1, f"d{i}", f"model-{i % 7}", "U", 1 + i % 5, "button", MONDAY_9_KYIV) for i in range(500)]
    _text, blocks = digest_message(model_stats(votes), MONDAY_9_KYIV - timedelta(days=7), MONDAY_9_KYIV)
    assert len(blocks) <= 50
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)


def test_the_digest_says_whether_a_model_beats_the_baseline_and_whether_raters_agree():
    store, slack = MemoryStore(), RecordingPoster()
    in_week = MONDAY_9_KYIV - timedelta(days=2)
    for ticket in range(1, 41):  # the fine-tuned model positive on 36 of 40 tickets, the base on 12
        for rater in ("U1", "U2"):
            good = 4 if ticket <= 36 else 2
            base = 4 if ticket <= 12 else 1
            store.record_vote(Vote(ticket, f"t{ticket}A", "llama2-7b-ft", rater, good, "button", in_week))
            store.record_vote(Vote(ticket, f"t{ticket}C", "llama2-7b", rater, base, "button", in_week))
    settings = DigestSettings(day_of_week="mon", hour=9, timezone="Europe/Kyiv", channel="CDIGEST")
    store.set_meta(META_LAST_PERIOD_END, (MONDAY_9_KYIV - timedelta(days=7)).isoformat())
    service = DigestService(
        store,
        slack,
        settings,
        MODELS,
        clock=lambda: MONDAY_9_KYIV + timedelta(hours=1),
        untuned=["llama2-7b"],
    )
    assert service.run_due()
    text = str(slack.calls_to("post")[0].blocks)
    assert "Against llama2-7b" in text
    assert "*llama2-7b-ft*: tickets positive (raters' mean 3+) +60.0 points" in text
    assert "40 tickets: better" in text
    assert "*gptj-6b-ft*: no tickets rated for both yet" in text
    assert "Krippendorff's alpha 1.00 on 80 drafts, reliable" in text


def test_the_digest_shares_its_chart_in_the_channel_and_the_dms_and_survives_a_failed_upload(caplog):
    store, slack = MemoryStore(), RecordingPoster()
    in_week = MONDAY_9_KYIV - timedelta(days=2)
    for ticket in range(1, 6):
        store.record_vote(Vote(ticket, f"t{ticket}A", "llama2-7b-ft", "U1", 5, "button", in_week))
    settings = DigestSettings(
        day_of_week="mon", hour=9, timezone="Europe/Kyiv", channel="CDIGEST", users=("UGONE", "ULEAD")
    )
    service = _service_due_now(store, slack, settings)
    slack.fail_next("dm_upload", code="missing_scope")
    assert service.run_due()
    assert [(channel, name) for channel, name, _, _ in slack.files] == [
        ("CDIGEST", "draftdesk-digest-2026-03-02.png"),
        ("DULEAD", "draftdesk-digest-2026-03-02.png"),  # UGONE's upload failed, ULEAD's did not
    ]
    channel, _name, png, title = slack.files[0]
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert title == "Draft ratings 23 Feb – 02 Mar 2026"
    assert "could not share the digest chart with UGONE" in caplog.text
    assert len(slack.calls_to("dm")) == 2  # both got the text
    assert not service.run_due()  # recorded as posted all the same


def test_the_chart_draws_the_distribution_and_the_trend_at_a_readable_size():
    import io

    from matplotlib.image import imread

    from bot.reporting.chart import digest_chart
    from bot.reporting.comparisons import weekly_trend

    votes = [
        Vote(t, f"t{t}{m}", m, "U1", 1 + (t * 7 + len(m)) % 5, "button", MONDAY_9_KYIV - timedelta(days=t))
        for t in range(1, 50)
        for m in MODELS
    ]
    png = digest_chart(model_stats(votes, MODELS), weekly_trend(votes, MODELS, MONDAY_9_KYIV), "Ratings")
    height, width, _channels = imread(io.BytesIO(png)).shape
    assert width >= 1000 and 250 <= height <= 600


def test_the_digest_shows_rows_per_adapter_version_and_each_candidates_standing():
    from bot.reporting.promotion import CandidatePair, standing

    store, slack = MemoryStore(), RecordingPoster()
    in_week = MONDAY_9_KYIV - timedelta(days=2)
    for ticket in range(1, 21):  # odd tickets: the current version v1, even ones: the candidate v2
        version = "v1" if ticket % 2 else "v2"
        score = 5 if version == "v2" else 2
        store.record_vote(
            Vote(
                ticket, f"t{ticket}r1A", "llama2-7b-ft", "U1", score, "button", in_week, model_version=version
            )
        )
    store.set_meta(META_LAST_PERIOD_END, (MONDAY_9_KYIV - timedelta(days=7)).isoformat())
    pair = CandidatePair("llama2-7b-ft", "v1", "v2")
    service = DigestService(
        store,
        slack,
        SETTINGS,
        MODELS,
        clock=lambda: MONDAY_9_KYIV + timedelta(hours=1),
        candidates=lambda votes: [standing(votes, pair, min_tickets=100, max_p=0.05)],
    )
    assert service.run_due()
    text = str(slack.calls_to("post")[0].blocks)
    assert "llama2-7b-ft @ v1" in text and "llama2-7b-ft @ v2" in text  # a row per version
    assert "*Candidates*" in text and "candidate v2: 100.0% positive" in text
    assert "too few tickets yet (90 more each for the minimum of 100)" in text


def test_the_digest_shows_the_reply_actually_sent_and_why_drafts_failed():
    from core.domain import DraftOutcome

    store, slack = MemoryStore(), RecordingPoster()
    in_week = MONDAY_9_KYIV - timedelta(days=2)
    for ticket in range(1, 5):  # 4 answered tickets: the fine-tuned draft sent on 3
        store.record_outcomes(
            [
                DraftOutcome(ticket, f"t{ticket}r1A", "llama2-7b-ft", 9, ticket <= 3, 80.0, 0.1, in_week),
                DraftOutcome(ticket, f"t{ticket}r1B", "llama2-7b", 9, False, 20.0, 0.8, in_week),
            ]
        )
    old = MONDAY_9_KYIV - timedelta(days=20)  # an earlier week's outcome is not this digest's
    store.record_outcomes([DraftOutcome(9, "t9r1B", "llama2-7b", 9, True, 99.0, 0.0, old)])
    store.record_vote(Vote(1, "t1r1B", "llama2-7b", "U1", 1, "button", in_week, "wrong_facts"))
    store.record_vote(Vote(1, "t1r1B", "llama2-7b", "U2", 2, "button", in_week, "tone"))
    store.record_vote(Vote(2, "t2r1B", "llama2-7b", "U2", 2, "button", in_week, "wrong_facts"))
    assert _service_due_now(store, slack).run_due()
    text = str(slack.calls_to("post")[0].blocks)
    assert "*llama2-7b-ft*: sent 75% (3 of 4), chrF 80 to the reply sent, edit distance 0.10" in text
    assert "*llama2-7b*: sent 0% (0 of 4), chrF 20" in text
    assert "*llama2-7b*: Wrong facts 2 (67%), Tone 1 (33%)" in text
    assert "gptj-6b-ft*: sent" not in text  # no answered tickets: no line


def test_a_note_appears_under_the_digest_heading_escaped():
    votes = [Vote(1, "d1", "m", "U", 4, "button", MONDAY_9_KYIV)]
    since = MONDAY_9_KYIV - timedelta(days=7)
    _text, plain = digest_message(model_stats(votes), since, MONDAY_9_KYIV)
    _text, noted = digest_message(model_stats(votes), since, MONDAY_9_KYIV, note="Demo: <simulated> raters")
    assert len(noted) == len(plain) + 1
    assert noted[2] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "Demo: &lt;simulated&gt; raters"}],
    }

"""DraftActions on its own: votes by button and reaction, reactions removed, and payloads it must
refuse (sending a draft is tests/test_send_modal.py). In-memory store and chat recorder, no Bolt, no HTTP (the
Bolt side runs against the stand-ins in test_end_to_end and test_socket_mode)."""

import json
from datetime import UTC, datetime

import pytest

from bot.slack.blocks import draft_message, reason_picker, vote_confirmation
from bot.slack.listeners import UNKNOWN_DRAFT, DraftActions
from bot.store.memory import MemoryStore
from core.domain import DraftRecord
from tests.recording_poster import RecordingPoster

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CHANNEL = "CDRAFTS"
LONG_TEXT = "A long answer. " * 1000  # over one message: the draft spans two


@pytest.fixture
def env():
    """Ticket 7's thread with round 1: Draft A (one message), B (two messages), C (model failed)."""
    store, slack = MemoryStore(), RecordingPoster()
    parent_ts = slack.post_parent(CHANNEL, "New ticket #7")
    store.save_ticket_thread(7, CHANNEL, parent_ts)
    store.create_round(7, 70, [("A", "llama-ft"), ("B", "gptj-ft"), ("C", "llama")])
    store.save_generated("t7r1A", "Please restart the backup.", None)
    store.save_generated("t7r1B", LONG_TEXT, None)
    store.save_generated("t7r1C", None, "CUDA out of memory")
    for draft_id, text in (("t7r1A", "Please restart the backup."), ("t7r1B", LONG_TEXT)):
        label = draft_id[-1]
        for fallback, blocks in draft_message(label, text, draft_id, rated_count=0):
            store.add_draft_message(
                draft_id, CHANNEL, slack.post_in_thread(CHANNEL, parent_ts, fallback, blocks)
            )
    slack.calls.clear()
    actions = DraftActions(store, slack, clock=lambda: T0)
    return actions, store, slack, parent_ts


def shown(slack: RecordingPoster, draft: DraftRecord) -> str:
    """The text of the message that carries the draft's buttons, as it reads now."""
    return json.dumps(slack.messages[(draft.channel, draft.vote_ts)].blocks)


def test_button_vote_records_updates_and_confirms(env):
    actions, store, slack, parent_ts = env
    a = store.draft("t7r1A")
    actions.rate_button("UAGENT1", CHANNEL, parent_ts, "rate_4", a.id)
    [vote] = store.votes()
    assert (
        vote.ticket_id,
        vote.draft_id,
        vote.model,
        vote.rater,
        vote.score,
        vote.source,
        vote.voted_at,
    ) == (
        7,
        a.id,
        "llama-ft",
        "UAGENT1",
        4,
        "button",
        T0,
    )
    [update] = slack.calls_to("update")
    assert (update.channel, update.ts) == (CHANNEL, a.vote_ts) and "Rated by 1 agent" in shown(slack, a)
    assert "llama-ft" not in shown(slack, a)  # the blind label stays blind
    [answer] = slack.calls_to("ephemeral")
    assert (answer.channel, answer.user, answer.thread_ts) == (CHANNEL, "UAGENT1", parent_ts)
    assert answer.text == vote_confirmation("A", 4)


def test_a_second_click_replaces_the_vote(env):
    actions, store, slack, parent_ts = env
    actions.rate_button("UAGENT1", CHANNEL, parent_ts, "rate_4", "t7r1A")
    actions.rate_button("UAGENT1", CHANNEL, parent_ts, "rate_2", "t7r1A")
    actions.rate_button("UAGENT2", CHANNEL, parent_ts, "rate_5", "t7r1A")
    assert {(v.rater, v.score) for v in store.votes()} == {("UAGENT1", 2), ("UAGENT2", 5)}
    assert "Rated by 2 agents" in shown(slack, store.draft("t7r1A"))


def test_reaction_on_any_part_of_a_draft_is_a_vote(env):
    actions, store, slack, parent_ts = env
    b = store.draft("t7r1B")
    assert len(b.slack_ts) == 2
    actions.reaction_added("UAGENT2", "two", "message", CHANNEL, b.slack_ts[0])  # the first part
    assert [(v.draft_id, v.rater, v.score, v.source) for v in store.votes()] == [
        (b.id, "UAGENT2", 2, "reaction")
    ]
    [update] = slack.calls_to("update")
    assert update.ts == b.vote_ts and "Rated by 1 agent" in shown(slack, b)  # the part with the buttons
    [answer] = slack.calls_to("ephemeral")
    assert (answer.user, answer.channel, answer.thread_ts) == ("UAGENT2", CHANNEL, parent_ts)
    assert (answer.text, answer.blocks) == reason_picker("B", 2, b.id)  # a 2: "what was wrong?"


def picker_actions(blocks):
    """The action ids and block ids of a reason picker, as Slack would send them back."""
    found = {}
    for block in blocks:
        for element in block.get("elements", []) + ([block["element"]] if "element" in block else []):
            found[element["action_id"]] = (block["block_id"], element)
    return found


def test_a_low_score_asks_why_and_the_reason_is_kept_with_the_vote(env):
    actions, store, slack, parent_ts = env
    actions.rate_button("UAGENT1", CHANNEL, parent_ts, "rate_5", "t7r1A")
    assert slack.calls_to("ephemeral")[-1].blocks is None  # a 5 asks nothing
    actions.rate_button("UAGENT1", CHANNEL, parent_ts, "rate_1", "t7r1B")
    picker = picker_actions(slack.calls_to("ephemeral")[-1].blocks)
    block_id, select = picker["vote_reason"]
    assert [o["value"] for o in select["options"]] == [
        "wrong_facts",
        "not_answered",
        "tone",
        "too_long",
        "too_short",
        "unsafe",
    ]
    assert block_id.endswith("t7r1B") and picker["vote_reason_note"][0].endswith("t7r1B")
    actions.vote_reason("UAGENT1", CHANNEL, parent_ts, "t7r1B", "too_long", None)
    assert slack.calls_to("ephemeral")[-1].text == "Thanks, noted for Draft B: Too long"
    actions.vote_reason("UAGENT1", CHANNEL, parent_ts, "t7r1B", "other", "<!channel> says a & b")
    said = slack.calls_to("ephemeral")[-1].text  # the agent's words, shown as typed, never a mention
    assert said == "Thanks, noted for Draft B: Other: &lt;!channel&gt; says a &amp; b"
    actions.vote_reason("UAGENT1", CHANNEL, parent_ts, "t7r1B", "other", "  quotes last year's prices ")
    by_draft = {v.draft_id: (v.score, v.reason, v.reason_note) for v in store.votes()}
    assert by_draft == {"t7r1A": (5, None, None), "t7r1B": (1, "other", "quotes last year's prices")}


def test_a_reason_for_a_vote_changed_meanwhile_or_a_bad_reason_is_not_kept(env):
    actions, store, slack, parent_ts = env
    actions.rate_button("UAGENT1", CHANNEL, parent_ts, "rate_2", "t7r1A")
    actions.rate_button("UAGENT1", CHANNEL, parent_ts, "rate_4", "t7r1A")  # changed their mind
    actions.vote_reason("UAGENT1", CHANNEL, parent_ts, "t7r1A", "tone", None)
    assert "no longer a 1 or 2" in slack.calls_to("ephemeral")[-1].text
    actions.rate_button("UAGENT1", CHANNEL, parent_ts, "rate_2", "t7r1A")
    calls = len(slack.calls)
    actions.vote_reason("UAGENT1", CHANNEL, parent_ts, "t7r1A", "made_up", None)  # forged value
    assert len(slack.calls) == calls
    actions.vote_reason("UAGENT1", CHANNEL, parent_ts, "t7r1X", "tone", None)
    assert slack.calls_to("ephemeral")[-1].text == UNKNOWN_DRAFT
    assert [(v.score, v.reason) for v in store.votes()] == [(2, None)]


def test_removing_the_reaction_removes_the_vote(env):
    actions, store, slack, parent_ts = env
    a = store.draft("t7r1A")
    actions.reaction_added("UAGENT2", "two", "message", CHANNEL, a.vote_ts)
    actions.reaction_removed("UAGENT2", "two", "message", CHANNEL, a.vote_ts)
    assert store.votes() == []
    assert len(slack.calls_to("update")) == 2 and "Not rated yet" in shown(slack, a)


def test_removing_an_old_reaction_keeps_a_newer_button_vote(env):
    actions, store, slack, parent_ts = env
    a = store.draft("t7r1A")
    actions.reaction_added("UAGENT1", "two", "message", CHANNEL, a.vote_ts)
    actions.rate_button("UAGENT1", CHANNEL, parent_ts, "rate_5", a.id)
    updates = len(slack.calls_to("update"))
    actions.reaction_removed("UAGENT1", "two", "message", CHANNEL, a.vote_ts)
    assert [(v.score, v.source) for v in store.votes()] == [(5, "button")]
    assert len(slack.calls_to("update")) == updates  # nothing changed, nothing re-rendered


def test_a_chat_failure_after_recording_loses_nothing(env):
    actions, store, slack, parent_ts = env
    slack.fail_next("update", code="ratelimited")
    slack.fail_next("ephemeral", code="ratelimited")
    actions.rate_button("UAGENT1", CHANNEL, parent_ts, "rate_3", "t7r1A")  # does not raise
    assert [v.score for v in store.votes()] == [3]


@pytest.mark.parametrize(
    ("action_id", "user"),
    [("rate_9", "UAGENT1"), ("rate_x", "UAGENT1"), ("rate_4", "")],
)
def test_clicks_that_are_not_ratings_change_nothing(env, action_id, user):
    actions, store, slack, parent_ts = env
    actions.rate_button(user, CHANNEL, parent_ts, action_id, "t7r1A")
    assert store.votes() == [] and slack.calls == []


@pytest.mark.parametrize("draft_id", ["", "t9r1A", "t7r1C"])  # none, unknown, no text (model failed)
def test_unknown_drafts_are_answered_and_change_nothing(env, draft_id):
    actions, store, slack, parent_ts = env
    actions.rate_button("UAGENT1", CHANNEL, parent_ts, "rate_4", draft_id)
    assert store.votes() == [] and slack.calls_to("update") == []
    assert [(e.user, e.text) for e in slack.calls_to("ephemeral")] == [("UAGENT1", UNKNOWN_DRAFT)]


@pytest.mark.parametrize(
    ("user", "reaction", "item_type", "channel", "which"),
    [
        ("UAGENT2", "thumbsup", "message", CHANNEL, "vote_ts"),  # not a score
        ("UAGENT2", "two", "file", CHANNEL, "vote_ts"),  # on a file, not a message
        ("UAGENT2", "two", "message", CHANNEL, "unknown"),  # a message that is no draft
        ("UAGENT2", "two", "message", "COTHER", "vote_ts"),  # same ts, another channel
        ("", "two", "message", CHANNEL, "vote_ts"),  # nobody
    ],
)
def test_reactions_that_are_not_votes_change_nothing(env, user, reaction, item_type, channel, which):
    actions, store, slack, parent_ts = env
    ts = store.draft("t7r1A").vote_ts if which == "vote_ts" else "1.000001"
    actions.reaction_added(user, reaction, item_type, channel, ts)
    assert store.votes() == [] and slack.calls == []
    actions.reaction_added("UAGENT2", "two", "message", CHANNEL, store.draft("t7r1A").vote_ts)
    actions.reaction_removed(user, reaction, item_type, channel, ts)
    assert [(v.rater, v.score) for v in store.votes()] == [("UAGENT2", 2)]  # the real vote stays

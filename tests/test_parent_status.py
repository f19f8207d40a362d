"""The parent message's status line: answered, or a new round waiting (the channel view of a ticket)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta

from bot.slack.blocks import ticket_parent_message
from bot.slack.parent_status import STATUS_BLOCK, ParentStatus, refresh_parent_status, status_line
from bot.store.memory import MemoryStore
from core.domain import SEND_PENDING, SEND_SENT, SendRecord
from tests.recording_poster import RecordingPoster
from tests.test_store import T0
from tests.test_worker import ticket

CHANNEL = "CDRAFTS"


def posted_ticket() -> tuple[MemoryStore, RecordingPoster, str]:
    store, slack = MemoryStore(), RecordingPoster()
    text, blocks = ticket_parent_message(ticket())
    ts = slack.post_parent(CHANNEL, text, blocks)
    store.save_ticket_thread(1, CHANNEL, ts)
    post_round(store, 10, T0 - timedelta(hours=1))
    return store, slack, ts


def post_round(store: MemoryStore, comment_id: int, at: datetime) -> None:
    round_ = store.create_round(1, comment_id, [("A", "m1"), ("B", "m2")])
    for n, draft in enumerate(store.drafts_for_round(round_.id)):
        store.save_generated(draft.id, "Restart it.", None)
        store.add_draft_message(draft.id, CHANNEL, f"{at.timestamp() + n:.6f}")


def blocks_of(slack: RecordingPoster, ts: str) -> dict[str, dict]:
    return {b["block_id"]: b for b in slack.messages[(CHANNEL, ts)].blocks or []}


def test_a_send_marks_the_parent_answered_and_a_new_round_marks_it_waiting():
    store, slack, ts = posted_ticket()
    before = blocks_of(slack, ts)
    refresh_parent_status(store, slack, 1)
    assert slack.calls_to("update") == []  # round 1 waiting: the parent says it all
    pending = SendRecord("t1r1Bs1", 1, "t1r1", "t1r1B", "UGRACE", SEND_PENDING, False, False, "h", T0)
    store.record_send(pending)
    assert status_line(store, 1) is None  # not known to be sent yet
    store.record_send(replace(pending, state=SEND_SENT, comment_id=5))
    refresh_parent_status(store, slack, 1)
    after = blocks_of(slack, ts)
    status = after[STATUS_BLOCK]["elements"][0]["text"]
    assert status == ":white_check_mark: Answered: Draft B sent by <@UGRACE> as an internal note"
    assert after["ticket"] == before["ticket"] and after["help"] == before["help"]  # the rest as posted
    assert list(after) == ["ticket", STATUS_BLOCK, "help"]

    store.create_round(1, 20, [("A", "m2"), ("B", "m1")])  # the customer replied: drafting
    assert status_line(store, 1).startswith(":white_check_mark: Answered")  # nothing new in the thread yet
    for n, draft in enumerate(store.drafts_for_round("t1r2")):
        store.add_draft_message(draft.id, CHANNEL, f"{(T0 + timedelta(hours=1)).timestamp() + n:.6f}")
    refresh_parent_status(store, slack, 1)
    status = blocks_of(slack, ts)[STATUS_BLOCK]["elements"][0]["text"]
    assert status == ":speech_balloon: The customer replied: round 2 drafts are in the thread"
    updates = len(slack.calls_to("update"))
    refresh_parent_status(store, slack, 1)
    assert len(slack.calls_to("update")) == updates  # unchanged: no call

    # An agent answers with round 1's Draft A after round 2 was posted: answered all the same.
    later = SendRecord(
        "t1r1As1", 1, "t1r1", "t1r1A", "UHAL", SEND_SENT, True, True, "h", T0 + timedelta(hours=2)
    )
    store.record_send(later)
    assert status_line(store, 1) == ":white_check_mark: Answered: Draft A sent by <@UHAL> as a public reply"


def test_slack_failing_leaves_the_status_stale_and_raises_nothing():
    store, slack, ts = posted_ticket()
    store.record_send(SendRecord("t1r1As1", 1, "t1r1", "t1r1A", "U1", SEND_SENT, True, False, "h", T0))
    slack.fail_next("message", code="ratelimited")
    refresh_parent_status(store, slack, 1)
    assert STATUS_BLOCK not in blocks_of(slack, ts)
    refresh_parent_status(store, slack, 1)
    assert "as a public reply" in blocks_of(slack, ts)[STATUS_BLOCK]["elements"][0]["text"]


def test_refreshes_run_one_at_a_time_off_the_callers_thread():
    """The agent's confirmation and the worker never wait on Slack for the status line."""
    store, slack, ts = posted_ticket()
    slow = threading.Event()
    reading = slack.message
    slack.message = lambda channel, message_ts: (slow.wait(10), reading(channel, message_ts))[1]
    status = ParentStatus(store, slack)
    first = SendRecord("t1r1As1", 1, "t1r1", "t1r1A", "UHAL", SEND_SENT, False, False, "h", T0)
    store.record_send(first)
    started = time.monotonic()
    status.refresh_later(1)
    store.record_send(replace(first, id="t1r1Bs1", draft_id="t1r1B", user="UGRACE"))
    status.refresh_later(1)  # a second send at once
    assert time.monotonic() - started < 1  # neither caller waited for Slack
    slow.set()
    status.close()
    line = blocks_of(slack, ts)[STATUS_BLOCK]["elements"][0]["text"]
    assert "<@UHAL>" in line and "<@UGRACE>" in line  # the last refresh read the store last
    status.refresh_later(1)  # after close (the worker finishing a round at shutdown): no error

"""The ``core.ports.Store`` contract, run against both stores; then what only the TinyDB file does
(survive a restart, survive SIGKILL, open read-only)."""

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.memory_store import MemoryStore
from bot.store import TinyDBStore
from core.domain import JOB_DONE, JOB_FAILED, JOB_QUEUED, JOB_RUNNING, Vote
from core.ports import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def vote(draft="t1r1A", rater="U1", score=4, source="button", at=T0, model="m1"):
    return Vote(1, draft, model, rater, score, source, at)


@pytest.fixture(params=["tinydb", "memory"])
def store(request, tmp_path) -> Iterator[Store]:
    if request.param == "tinydb":
        opened = TinyDBStore(tmp_path / "s.json")
        yield opened
        opened.close()
    else:
        yield MemoryStore()


# ---- jobs -------------------------------------------------------------------------------------


def test_one_queued_job_per_ticket(store):
    assert store.enqueue(7, "webhook")
    for _ in range(4):
        assert not store.enqueue(7, "webhook")  # the same webhook delivered five times
    assert not store.enqueue(7, "poll")  # seen by the poller too
    assert len(store.jobs(JOB_QUEUED)) == 1
    job = store.claim_next_job()
    assert job is not None and job.ticket_id == 7 and job.attempts == 1 and job.status == JOB_RUNNING
    # While it runs, a new change to the ticket queues a new job: the running one may be stale.
    assert store.enqueue(7, "webhook")
    assert [j.status for j in store.jobs()] == [JOB_RUNNING, JOB_QUEUED]


def test_retry_waits_for_not_before_and_counts_attempts(store):
    store.enqueue(1, "webhook", now=T0)
    job = store.claim_next_job(T0)
    store.retry_job(job.id, "boom", T0 + timedelta(seconds=30))
    assert store.next_job_due() == T0 + timedelta(seconds=30)
    assert store.claim_next_job(T0 + timedelta(seconds=10)) is None
    again = store.claim_next_job(T0 + timedelta(seconds=31))
    assert again.id == job.id and again.attempts == 2 and again.last_error == "boom"
    store.fail_job(again.id, "gave up")
    [failed] = store.jobs(JOB_FAILED)
    assert failed.ticket_id == 1 and failed.last_error == "gave up"
    assert store.next_job_due() is None and store.claim_next_job(T0 + timedelta(days=1)) is None


def test_jobs_are_claimed_earliest_due_first_then_in_queue_order(store):
    store.enqueue(1, "poll", now=T0 + timedelta(seconds=5))
    store.enqueue(2, "poll", now=T0)
    store.enqueue(3, "poll", now=T0)
    assert store.next_job_due() == T0
    claimed = [store.claim_next_job(T0 + timedelta(seconds=10)) for _ in range(3)]
    assert [j.ticket_id for j in claimed] == [2, 3, 1]
    assert store.claim_next_job(T0 + timedelta(seconds=10)) is None


def test_finished_and_interrupted_jobs(store):
    store.enqueue(1, "webhook", now=T0)
    store.enqueue(2, "poll", now=T0)
    first = store.claim_next_job(T0)
    store.claim_next_job(T0)  # left running: the process dies here
    store.finish_job(first.id)
    assert store.requeue_interrupted_jobs() == 1
    assert store.requeue_interrupted_jobs() == 0
    assert [j.ticket_id for j in store.jobs(JOB_QUEUED)] == [2]
    assert [j.ticket_id for j in store.jobs(JOB_DONE)] == [1]
    assert store.claim_next_job(T0).attempts == 2  # the interrupted claim counted


def test_job_times_are_utc(store):
    kyiv = timezone(timedelta(hours=2))
    store.enqueue(1, "poll", now=T0.astimezone(kyiv))
    [job] = store.jobs()
    assert job.created_at == T0 and job.not_before.utcoffset() == timedelta(0)


# ---- threads, rounds, drafts --------------------------------------------------------------------


def test_rounds_drafts_and_message_lookup(store):
    assert store.ticket_thread(5) is None
    store.save_ticket_thread(5, "C1", "100.1")
    first = store.create_round(5, 11, [("A", "gptj"), ("B", "llama"), ("C", "llama-ft")])
    assert (first.id, first.number, first.posted, first.notices_posted) == ("t5r1", 1, False, ())
    assert store.round_for(5, 11) == first and store.round_for(5, 12) is None
    drafts = store.drafts_for_round("t5r1")
    assert [(d.id, d.label, d.model) for d in drafts] == [
        ("t5r1A", "A", "gptj"),
        ("t5r1B", "B", "llama"),
        ("t5r1C", "C", "llama-ft"),
    ]
    assert not any(d.generated for d in drafts)
    store.save_generated("t5r1A", "hello", None)
    store.save_generated("t5r1B", None, "OOM")
    a, b, c = store.drafts_for_round("t5r1")
    assert (a.generated, a.text, b.generated, b.error, c.generated) == (True, "hello", True, "OOM", False)
    store.add_draft_message("t5r1A", "C1", "100.2")
    store.add_draft_message("t5r1A", "C1", "100.3")
    found = store.draft_by_message("C1", "100.2")  # a reaction on the first part of a long draft
    assert found.id == "t5r1A" and found.model == "gptj" and found.vote_ts == "100.3"
    assert found.slack_ts == ("100.2", "100.3")
    assert store.draft_by_message("C2", "100.2") is None and store.draft_by_message("C1", "9.9") is None
    second = store.create_round(5, 12, [("A", "llama")])
    assert second.number == 2 and second.id == "t5r2" and store.ticket_thread(5) == ("C1", "100.1")
    assert [d.id for d in store.drafts_for_ticket(5)] == ["t5r1A", "t5r1B", "t5r1C", "t5r2A"]
    assert store.drafts_for_ticket(6) == []


def test_round_posted_and_notices_once(store):
    round_ = store.create_round(1, 10, [("A", "m1")])
    store.mark_notice_posted(round_.id, "failures")
    store.mark_notice_posted(round_.id, "failures")
    store.mark_notice_posted(round_.id, "new_round")
    store.mark_round_posted(round_.id)
    now = store.round_for(1, 10)
    assert now.posted and now.notices_posted == ("failures", "new_round")
    assert not round_.posted  # what a caller held is a snapshot


def test_unknown_drafts(store):
    assert store.draft("t9r1A") is None
    with pytest.raises(KeyError):
        store.add_draft_message("t9r1A", "C1", "1.1")
    store.save_generated("t9r1A", "text", None)  # changes nothing, creates nothing
    store.mark_sent("t9r1A", "U1")
    assert store.draft("t9r1A") is None and store.drafts_for_ticket(9) == []


def test_sent_marker(store):
    store.create_round(1, 10, [("A", "m1")])
    before = store.draft("t1r1A")
    store.mark_sent("t1r1A", "UAGENT")
    assert store.draft("t1r1A").sent_to_zendesk_by == "UAGENT" and before.sent_to_zendesk_by is None


# ---- votes --------------------------------------------------------------------------------------


def test_latest_vote_wins_and_reaction_removal(store):
    store.record_vote(vote(score=2, source="reaction"))
    store.record_vote(vote(score=5, source="button", at=T0 + timedelta(minutes=1)))
    store.record_vote(vote(rater="U2", score=3, source="reaction"))
    assert store.rated_count("t1r1A") == 2 and store.rated_count("t1r1B") == 0
    assert {(v.rater, v.score, v.source) for v in store.votes()} == {
        ("U1", 5, "button"),
        ("U2", 3, "reaction"),
    }
    # U1 removes the :two: reaction they had added before clicking 5: the button vote stays.
    assert not store.remove_reaction_vote("t1r1A", "U1", 2)
    assert not store.remove_reaction_vote("t1r1A", "U2", 4)  # not the reaction that counts
    assert store.remove_reaction_vote("t1r1A", "U2", 3)
    assert not store.remove_reaction_vote("t1r1A", "U2", 3)
    assert [v.rater for v in store.votes()] == ["U1"] and store.rated_count("t1r1A") == 1


def test_vote_window_and_order(store):
    for day in (3, 0, 2, 1, 4):
        store.record_vote(vote(draft=f"d{day}", at=T0 + timedelta(days=day)))
    store.record_vote(vote(draft="d1", rater="U0", at=T0 + timedelta(days=1)))
    picked = store.votes(T0 + timedelta(days=1), T0 + timedelta(days=3))
    assert [(v.draft_id, v.rater) for v in picked] == [("d1", "U0"), ("d1", "U1"), ("d2", "U1")]
    assert [v.draft_id for v in store.votes(since=T0 + timedelta(days=4))] == ["d4"]
    assert [v.draft_id for v in store.votes(until=T0 + timedelta(days=1))] == ["d0"]


def test_votes_come_back_in_utc(store):
    store.record_vote(vote(at=T0.astimezone(timezone(timedelta(hours=-5)))))
    [stored] = store.votes()
    assert stored.voted_at == T0 and stored.voted_at.utcoffset() == timedelta(0)
    assert stored == vote()


# ---- small state and threads ------------------------------------------------------------------


def test_meta_values(store):
    assert store.get_meta("poll_cursor") is None and store.get_meta("poll_cursor", "none") == "none"
    store.set_meta("poll_cursor", "abc")
    store.set_meta("poll_cursor", "def")
    seen = [1, 2]
    store.set_meta("seen", seen)
    seen.append(3)  # the caller's list, not the stored value
    store.set_meta("cleared", None)
    assert store.get_meta("poll_cursor") == "def" and store.get_meta("seen") == [1, 2]
    assert store.get_meta("cleared", "default") is None  # a stored None is a value
    store.get_meta("seen").append(3)
    assert store.get_meta("seen") == [1, 2]  # a copy, as read from the file


def test_enqueue_is_safe_across_threads(store):
    start = threading.Barrier(8)
    added = []

    def enqueue_same_ticket():
        start.wait()
        added.append(store.enqueue(42, "webhook"))

    threads = [threading.Thread(target=enqueue_same_ticket) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(added) == [False] * 7 + [True]
    assert len(store.jobs(JOB_QUEUED)) == 1


# ---- the TinyDB file only -----------------------------------------------------------------------


def test_everything_survives_reopening_the_file(tmp_path):
    path = tmp_path / "s.json"
    store = TinyDBStore(path)
    store.enqueue(1, "webhook", now=T0)
    store.enqueue(2, "poll", now=T0)
    store.claim_next_job(T0)  # running when the process stops
    store.save_ticket_thread(1, "C1", "100.1")
    store.create_round(1, 10, [("A", "m1")])
    store.save_generated("t1r1A", "hello", None)
    store.add_draft_message("t1r1A", "C1", "100.2")
    store.record_vote(vote(draft="t1r1A"))
    store.set_meta("poll_cursor", "abc")
    store.close()
    reopened = TinyDBStore(path)
    assert reopened.requeue_interrupted_jobs() == 1
    assert [(j.ticket_id, j.attempts) for j in reopened.jobs(JOB_QUEUED)] == [(1, 1), (2, 0)]
    assert reopened.ticket_thread(1) == ("C1", "100.1")
    assert reopened.draft_by_message("C1", "100.2").text == "hello"
    assert reopened.votes() == [vote(draft="t1r1A")]
    assert reopened.get_meta("poll_cursor") == "abc"


def test_killing_the_writer_never_corrupts_the_file(tmp_path):
    """SIGKILL a process in the middle of a stream of writes: the file is always whole JSON."""
    path = tmp_path / "s.json"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from bot.store import TinyDBStore
        store = TinyDBStore(Path({str(path)!r}))
        i = 0
        while True:
            store.enqueue(i, "poll")
            store.set_meta("counter", i)
            i += 1
            if i == 20:
                print("ready", flush=True)
        """
    )
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)  # let it write on: the kill must land mid-stream, not at a quiet moment
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = json.loads(path.read_text())  # never torn
        store = TinyDBStore(path)
        counter = store.get_meta("counter")
        assert counter >= 19
        # every job enqueued before the last recorded counter is there
        assert {j.ticket_id for j in store.jobs()} >= set(range(counter + 1))
        assert "jobs" in data
    TinyDBStore(path)  # a writer's open sweeps temporary files a killed writer left behind
    assert not list(tmp_path.glob(".s.json.*.tmp"))


def test_read_only_store_does_not_write(tmp_path):
    path = tmp_path / "s.json"
    TinyDBStore(path).enqueue(1, "poll")
    before = path.read_bytes()
    ro = TinyDBStore(path, read_only=True)
    assert len(ro.jobs()) == 1
    assert path.read_bytes() == before

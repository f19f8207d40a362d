"""The ``core.ports.Store`` contract, run against every store; then what only the TinyDB files do
(survive a restart, survive SIGKILL, open read-only), and the partitioned store's own layout."""

import json
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from tinydb.table import Document

from bot.store.atomic_storage import AtomicJSONStorage, StoreDamaged
from bot.store.documents import job_from_doc, outcome_from_doc, round_from_doc, send_from_doc, votes_from_docs
from bot.store.memory import MemoryStore
from bot.store.partitioned import PartitionedStore, backup_path, history_folder, open_store
from bot.store.pg.store import PostgresStore
from core.domain import (
    JOB_DONE,
    JOB_FAILED,
    JOB_QUEUED,
    JOB_RUNNING,
    SEND_FAILED,
    SEND_PENDING,
    SEND_SENT,
    SendRecord,
    Vote,
)
from core.ports import Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def send(send_id="t1r1As1", draft="t1r1A", state=SEND_PENDING, at=T0, user="U1", **changes):
    round_id, ticket = draft[:-1], int(draft[1 : draft.index("r")])
    return SendRecord(send_id, ticket, round_id, draft, user, state, False, False, "ab" * 32, at, **changes)


def vote(draft="t1r1A", rater="U1", score=4, source="button", at=T0, model="m1"):
    return Vote(1, draft, model, rater, score, source, at)


@pytest.fixture(params=["partitioned", "memory", "postgres"])
def store(request, tmp_path) -> Iterator[Store]:
    if request.param == "partitioned":
        opened = PartitionedStore(tmp_path / "s.json")
        yield opened
        opened.close()
    elif request.param == "postgres":
        database = request.getfixturevalue("postgres_url")  # a real server, a new database
        opened = PostgresStore(database)
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


def test_an_operator_retries_a_failed_job_from_scratch_and_drops_others(store):
    store.enqueue(1, "webhook", now=T0)
    first = store.claim_next_job(T0)
    store.fail_job(first.id, "gave up")
    store.enqueue(2, "webhook", now=T0 + timedelta(hours=2))
    later = T0 + timedelta(hours=1)
    again = store.requeue_job(first.id, later)
    assert again.id == first.id and again.status == JOB_QUEUED and again.attempts == 0
    assert again.not_before == later and store.claim_next_job(later).id == first.id
    assert store.requeue_job(first.id, later) is None  # running now: the worker has it
    assert not store.drop_job(first.id)
    assert store.requeue_job(999) is None and not store.drop_job(999)
    [second] = store.jobs(JOB_QUEUED)
    assert store.drop_job(second.id) and store.jobs(JOB_QUEUED) == []
    assert store.claim_next_job(T0 + timedelta(days=1)) is None


def test_a_retried_job_joins_the_tickets_queued_job(store):
    store.enqueue(5, "webhook", now=T0)
    failed = store.claim_next_job(T0)
    store.fail_job(failed.id, "gave up")
    assert store.enqueue(5, "webhook", now=T0)  # the ticket changed since: a new job waits
    [waiting] = store.jobs(JOB_QUEUED)
    assert store.requeue_job(failed.id, T0).id == waiting.id
    assert [j.id for j in store.jobs()] == [waiting.id]  # still one queued job for the ticket


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


def test_a_round_keeps_its_language_and_its_drafts_carry_it(store):
    german = store.create_round(5, 11, [("A", "de-model")], language="de")
    assert german.language == "de" and store.round_for(5, 11).language == "de"
    assert store.draft("t5r1A").language == "de" and store.drafts_for_round("t5r1")[0].language == "de"
    store.mark_round_posted(german.id)
    assert store.round_for(5, 11).language == "de"
    unknown = store.create_round(5, 12, [("A", "m1")])  # a caller that decides none
    assert unknown.language is None and store.draft("t5r2A").language is None
    none_writes_it = store.create_round(6, 13, [], language="fr")  # no model writes French
    assert store.drafts_for_round(none_writes_it.id) == [] and store.round_for(6, 13).language == "fr"


def test_a_pending_parent_until_its_thread_is_saved(store):
    assert store.thread_pending(5) is None
    store.mark_thread_pending(5, "C1", T0)
    assert store.thread_pending(5) == ("C1", T0) and store.ticket_thread(5) is None
    store.save_ticket_thread(5, "C1", "100.1")
    assert store.thread_pending(5) is None and store.ticket_thread(5) == ("C1", "100.1")
    assert store.thread_pending(6) is None


def test_a_round_and_its_drafts_are_one_write(tmp_path):
    """A kill between two writes must never leave a round without (some of) its drafts."""
    store = PartitionedStore(tmp_path / "store.json")
    store.save_ticket_thread(1, "C1", "100.1")
    writes = []
    original = AtomicJSONStorage.write

    def counted(self, data):
        writes.append(self)
        return original(self, data)

    AtomicJSONStorage.write = counted
    try:
        store.create_round(1, 10, [("A", "m1"), ("B", "m2"), ("C", "m3")])
    finally:
        AtomicJSONStorage.write = original
    assert len(writes) == 1
    store.close()
    reopened = PartitionedStore(tmp_path / "store.json")
    assert [d.id for d in reopened.drafts_for_round("t1r1")] == ["t1r1A", "t1r1B", "t1r1C"]
    assert reopened.create_round(1, 11, [("A", "m1")]).number == 2  # ids continue after the raw write
    assert [d.id for d in reopened.drafts_for_ticket(1)] == ["t1r1A", "t1r1B", "t1r1C", "t1r2A"]
    reopened.close()


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


def test_a_draft_records_its_model_version_prompt_and_question(store):
    store.create_round(4, 21, [("A", "llama-ft"), ("B", "gptj")])
    store.save_generated("t4r1A", "Try again.", None, model_version="20260105-dpo", prompt="P\n\nAgent:")
    store.save_generated("t4r1B", None, "OOM", prompt="Q\n\nAgent:")
    a, b = store.drafts_for_round("t4r1")
    assert (a.model_version, a.prompt, a.comment_id) == ("20260105-dpo", "P\n\nAgent:", 21)
    assert (b.model_version, b.prompt, b.error) == (None, "Q\n\nAgent:", "OOM")
    store.record_vote(Vote(4, "t4r1A", "llama-ft", "U1", 5, "button", T0, model_version="20260105-dpo"))
    assert [v.model_version for v in store.votes()] == ["20260105-dpo"]


def test_sends_are_recorded_pending_then_finished(store):
    store.create_round(1, 10, [("A", "m1"), ("B", "m2")])
    first = send()
    store.record_send(first)
    assert store.sends_for_round("t1r1") == [first] and store.pending_sends() == [first]
    done = replace(first, state=SEND_SENT, comment_id=55, author_id=9, finished_at=T0 + timedelta(seconds=1))
    store.record_send(done)
    second = send("t1r1Bs1", "t1r1B", at=T0 + timedelta(minutes=5), user="U2")
    store.record_send(second)
    assert store.sends_for_round("t1r1") == [done, second]
    assert store.pending_sends() == [second]
    failed = replace(second, state=SEND_FAILED, error="Zendesk answered HTTP 422", edited_text="Hi <3")
    store.record_send(failed)
    assert store.pending_sends() == [] and store.sends_for_round("t1r1") == [done, failed]
    assert store.sends_for_round("t1r2") == [] and store.sends_for_round("t2r1") == []


def test_drafts_posted_since(store):
    monday = datetime(2026, 3, 2, tzinfo=UTC)
    for ticket, ts in ((1, monday - timedelta(days=3)), (2, monday + timedelta(hours=1)), (3, monday)):
        store.create_round(ticket, 10, [("A", "m1"), ("B", "m2")])
        store.add_draft_message(f"t{ticket}r1A", "C1", f"{ts.timestamp():.6f}")
        store.add_draft_message(f"t{ticket}r1A", "C1", f"{ts.timestamp() + 1:.6f}")  # a second part
    store.add_draft_message("t2r1B", "C1", f"{(monday + timedelta(hours=2)).timestamp():.6f}")
    assert [d.id for d in store.drafts_posted_since(monday)] == ["t2r1A", "t2r1B", "t3r1A"]
    assert store.drafts_posted_since(monday + timedelta(days=400)) == []


def test_a_send_of_an_unknown_draft_is_refused(store):
    with pytest.raises(KeyError):
        store.record_send(send(draft="t9r1A"))
    assert store.pending_sends() == []


def test_ticket_contact(store):
    assert store.ticket_contact(1) is None
    store.save_ticket_contact(1, "Maria Schmidt", "maria@example.com")
    store.save_ticket_contact(1, "Maria Schmidt-Lenz", "maria@example.com")
    assert store.ticket_contact(1) == ("Maria Schmidt-Lenz", "maria@example.com")
    assert store.ticket_contact(2) is None


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


def test_a_reason_attaches_to_a_negative_vote_and_a_new_score_clears_it(store):
    store.record_vote(vote(score=2))
    store.record_vote(vote(rater="U2", score=4))
    assert store.set_vote_reason("t1r1A", "U1", "other", "quoted the wrong plan")
    assert not store.set_vote_reason("t1r1A", "U2", "tone")  # a positive vote takes no reason
    assert not store.set_vote_reason("t1r1A", "U3", "tone")  # no vote at all
    with pytest.raises(ValueError):
        store.set_vote_reason("t1r1A", "U1", "boring")
    by_rater = {v.rater: (v.score, v.reason, v.reason_note) for v in store.votes()}
    assert by_rater == {"U1": (2, "other", "quoted the wrong plan"), "U2": (4, None, None)}
    store.record_vote(vote(score=1, at=T0 + timedelta(minutes=1)))  # rated again: the old reason goes
    assert [(v.score, v.reason) for v in store.votes() if v.rater == "U1"] == [(1, None)]
    assert store.set_vote_reason("t1r1A", "U1", "wrong_facts")
    assert [v.reason for v in store.votes() if v.rater == "U1"] == ["wrong_facts"]


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
    store = PartitionedStore(path)
    store.enqueue(1, "webhook", now=T0)
    store.enqueue(2, "poll", now=T0)
    store.claim_next_job(T0)  # running when the process stops
    store.save_ticket_thread(1, "C1", "100.1")
    store.create_round(1, 10, [("A", "m1")])
    store.save_generated("t1r1A", "hello", None)
    store.add_draft_message("t1r1A", "C1", "100.2")
    store.record_vote(vote(draft="t1r1A"))
    store.set_meta("poll_cursor", "abc")
    store.record_send(send())
    store.save_ticket_contact(1, "Maria", "maria@example.com")
    store.close()
    reopened = PartitionedStore(path)
    assert reopened.pending_sends() == [send()] and reopened.ticket_contact(1) == (
        "Maria",
        "maria@example.com",
    )
    assert reopened.requeue_interrupted_jobs() == 1
    assert [(j.ticket_id, j.attempts) for j in reopened.jobs(JOB_QUEUED)] == [(1, 1), (2, 0)]
    assert reopened.ticket_thread(1) == ("C1", "100.1")
    assert reopened.draft_by_message("C1", "100.2").text == "hello"
    assert reopened.votes() == [vote(draft="t1r1A")]
    assert reopened.get_meta("poll_cursor") == "abc"


def _without_new_fields(data):
    if isinstance(data, list):
        return [_without_new_fields(item) for item in data]
    if not isinstance(data, dict):
        return data
    gone = {"model_version", "prompt"} | ({"comment_id"} if "label" in data else set())
    return {key: _without_new_fields(value) for key, value in data.items() if key not in gone}


def test_drafts_and_votes_stored_before_versions_were_recorded_still_load(tmp_path):
    path = tmp_path / "s.json"
    store = PartitionedStore(path)
    store.create_round(1, 10, [("A", "m1")])
    store.save_generated("t1r1A", "hello", None, model_version="v1", prompt="p")
    store.record_vote(vote(draft="t1r1A"))
    store.close()
    for file in [path, *history_folder(path).glob("**/*.json")]:  # as an older version wrote them
        file.write_text(json.dumps(_without_new_fields(json.loads(file.read_text() or "{}"))))
    assert "model_version" not in "".join(f.read_text() for f in tmp_path.glob("**/*.json"))
    reopened = PartitionedStore(path, read_only=True)
    draft = reopened.draft("t1r1A")
    assert (draft.text, draft.model_version, draft.prompt) == ("hello", None, None)
    assert reopened.votes() == [vote(draft="t1r1A")] and reopened.votes()[0].model_version is None


def test_killing_the_writer_never_corrupts_the_file(tmp_path):
    """SIGKILL a process in the middle of a stream of writes: every file is always whole JSON."""
    path = tmp_path / "s.json"
    script = textwrap.dedent(
        f"""
        import sys
        from datetime import datetime, UTC
        from pathlib import Path
        from bot.store.partitioned import PartitionedStore
        from core.domain import Vote
        store = PartitionedStore(Path({str(path)!r}))
        i = 0
        while True:
            store.enqueue(i, "poll")
            job = store.claim_next_job()
            store.fail_job(job.id, "gone") if i % 3 == 0 else store.finish_job(job.id)
            store.create_round(i, 1, [("A", "m1")])
            store.add_draft_message(f"t{{i}}r1A", "C1", f"{{1700000000 + i * 3600}}.5")
            store.record_vote(Vote(i, f"t{{i}}r1A", "m1", "U1", 4, "button", datetime.now(UTC)))
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
        for part in tmp_path.glob("**/*.json"):
            json.loads(part.read_text())
        store = PartitionedStore(path)
        counter = store.get_meta("counter")
        assert counter >= 19
        # every job, draft message and vote recorded before the last recorded counter is there
        assert {j.ticket_id for j in store.jobs(JOB_DONE)} >= {i for i in range(counter + 1) if i % 3}
        assert {j.ticket_id for j in store.jobs(JOB_FAILED)} >= set(range(0, counter + 1, 3))
        for i in range(counter + 1):
            assert store.draft_by_message("C1", f"{1700000000 + i * 3600}.5").id == f"t{i}r1A"
            assert store.rated_count(f"t{i}r1A") == 1
        assert len(store.votes()) >= counter + 1
        assert "jobs" not in data and "format" in data  # the queue lives in jobs/N.json parts
        store.close()
    PartitionedStore(path)  # a writer's open sweeps temporary files a killed writer left behind
    assert not list(tmp_path.glob(".s.json.*.tmp"))


def test_read_only_store_does_not_write(tmp_path):
    path = tmp_path / "s.json"
    writer = PartitionedStore(path)
    writer.enqueue(1, "poll")
    writer.create_round(1, 10, [("A", "m1")])
    writer.record_vote(vote(draft="t1r1A"))
    before = {p: p.read_bytes() for p in tmp_path.glob("**/*") if p.is_file()}
    ro = PartitionedStore(path, read_only=True)
    assert len(ro.jobs()) == 1 and ro.votes() == [vote(draft="t1r1A")]
    with pytest.raises(PermissionError):
        ro.record_vote(vote(draft="t1r1A", rater="U2"))
    with pytest.raises(PermissionError):
        ro.enqueue(2, "poll")
    assert {p: p.read_bytes() for p in tmp_path.glob("**/*") if p.is_file()} == before


# ---- the partitioned store's layout ---------------------------------------------------------------


def _files(root):
    """Each file's identity: an atomic rewrite gives a file a new inode."""
    return {p.relative_to(root): (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.glob("**/*.json")}


def _history(store, tickets=range(1, 101)):
    for ticket in tickets:
        store.save_ticket_thread(ticket, "C1", f"{1772442000 + ticket}.1")
        store.create_round(ticket, 10, [("A", "m1"), ("B", "m2")])
        store.save_generated(f"t{ticket}r1A", "x" * 800, None)
        store.add_draft_message(f"t{ticket}r1A", "C1", f"{1772442000 + ticket}.2")
        store.record_vote(vote(draft=f"t{ticket}r1A", at=T0 + timedelta(hours=ticket)))


def test_a_write_rewrites_only_the_small_files_it_concerns(tmp_path):
    store = PartitionedStore(tmp_path / "s.json")
    _history(store)
    before = _files(tmp_path)
    store.record_vote(vote(draft="t7r1A", rater="U2", at=T0 + timedelta(days=1)))
    after = _files(tmp_path)
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed == {Path("s.json.d/votes/000000.json")}  # tickets 0-24: ticket 7's part only
    store.enqueue(99, "poll")
    assert {p for p, v in _files(tmp_path).items() if after.get(p) != v} == {
        Path("s.json.d/jobs/000000.json")
    }
    after = _files(tmp_path)
    store.set_meta("cursor", 1)
    assert {p for p, v in _files(tmp_path).items() if after[p] != v} == {Path("s.json")}
    sizes = [p.stat().st_size for p in tmp_path.glob("**/*.json")]
    assert max(sizes) < 50_000  # 100 tickets: 4 parts, no file holds the whole history


def test_a_vote_in_an_old_week_lands_in_that_week_and_reports_read_only_their_weeks(tmp_path):
    store = PartitionedStore(tmp_path / "s.json")
    old, new = T0 - timedelta(weeks=30), T0
    store.record_vote(vote(draft="t30r1A", at=old))
    store.record_vote(vote(draft="t1000r1A", at=new))
    weeks = store._part("votes", "weeks").table("weeks").all()
    assert {(d["week"], d["part"]) for d in weeks} == {("2025-08-04", "000001"), ("2026-03-02", "000040")}
    # The old week's report does not read the new week's part: break it, and the report still works.
    (tmp_path / "s.json.d/votes/000040.json").write_text("not json")
    assert [v.draft_id for v in store.votes(old, old + timedelta(days=7))] == ["t30r1A"]
    with pytest.raises(RuntimeError):
        store.votes(new, new + timedelta(days=7))


def test_jobs_live_in_parts_of_a_hundred_ids_and_ids_are_never_given_again(tmp_path):
    store = PartitionedStore(tmp_path / "s.json")
    for ticket in range(5):
        store.enqueue(ticket, "poll", now=T0)
        store.finish_job(store.claim_next_job(T0).id)
    store.enqueue(5, "poll", now=T0)
    store.enqueue(6, "poll", now=T0)
    assert store.drop_job(7)  # the last id issued
    assert "jobs" not in json.loads((tmp_path / "s.json").read_text())
    part = json.loads((tmp_path / "s.json.d/jobs/000000.json").read_text())["jobs"]
    assert [(job["ticket_id"], job["status"]) for job in part.values()] == [
        (t, JOB_DONE) for t in range(5)
    ] + [(5, JOB_QUEUED)]
    store.close()
    reopened = PartitionedStore(tmp_path / "s.json")
    reopened.enqueue(7, "poll", now=T0)  # ids go on after the finished and the dropped ones
    assert [j.id for j in reopened.jobs()] == [1, 2, 3, 4, 5, 6, 8]
    assert [j.ticket_id for j in reopened.jobs(JOB_DONE)] == [0, 1, 2, 3, 4]


# A store file written by the single-file store of the first version (see tests/fixtures/README.md).
V1_FIXTURE = Path(__file__).parent / "fixtures" / "store" / "single_file_v1.json"
V1_TABLES = {"jobs", "ticket_threads", "rounds", "drafts", "votes", "outcomes", "sends", "contacts", "meta"}


def _v1_store(tmp_path: Path) -> Path:
    path = tmp_path / "draftdesk.json"
    path.write_bytes(V1_FIXTURE.read_bytes())
    return path


def _assert_holds_the_v1_fixture(store: Store) -> None:
    """Every document of every table of the old file, read back through the ``Store`` contract:
    each compared with the old document as the stores' own record formats read it."""
    old = json.loads(V1_FIXTURE.read_text())
    assert set(old) == V1_TABLES  # a table this test does not check would fail here
    jobs = [job_from_doc(Document(doc, doc_id=int(k))) for k, doc in old["jobs"].items()]
    assert store.jobs() == jobs and [j.status for j in jobs] == [
        JOB_DONE,
        JOB_FAILED,
        JOB_RUNNING,
        JOB_QUEUED,
    ]
    threads = old["ticket_threads"].values()
    assert [store.ticket_thread(t["ticket_id"]) for t in threads] == [
        (t["channel"], t["ts"]) if t["ts"] else None for t in threads
    ]
    assert store.thread_pending(104) == ("C0DESK", datetime(2026, 3, 9, 12, tzinfo=UTC))
    assert [store.round_for(r["ticket_id"], r["comment_id"]) for r in old["rounds"].values()] == [
        round_from_doc(r) for r in old["rounds"].values()
    ]
    assert store.round_for(101, 9001).notices_posted == ("failures",)
    # Recorded before languages were: no language (reports and digests read it as the default).
    assert {store.round_for(r["ticket_id"], r["comment_id"]).language for r in old["rounds"].values()} == {
        None
    }
    assert {store.draft(d["id"]).language for d in old["drafts"].values()} == {None}
    drafts = [store.draft(d["id"]) for d in old["drafts"].values()]
    for draft, doc in zip(drafts, old["drafts"].values(), strict=True):
        assert draft is not None
        fields = {**{k: getattr(draft, k) for k in doc if k != "number"}, "slack_ts": list(draft.slack_ts)}
        assert fields == {k: v for k, v in doc.items() if k != "number"}
    for doc in old["drafts"].values():
        for ts in doc["slack_ts"]:
            assert store.draft_by_message(doc["channel"], ts).id == doc["id"]
    assert store.draft("t101r1B").slack_ts == ("1772442121.000200", "1772442125.000300")
    votes = sorted(votes_from_docs(old["votes"].values(), None, None), key=lambda v: (v.voted_at, v.draft_id))
    assert store.votes() == votes and len(votes) == 4
    assert (votes[0].reason, votes[0].reason_note, votes[1].model_version) == (
        "other",
        "too formal",
        "ft-v1@3",
    )
    outcomes = [outcome_from_doc(doc) for doc in old["outcomes"].values()]
    assert store.outcomes() == outcomes and len(outcomes) == 3
    week = datetime(2026, 3, 2, tzinfo=UTC)
    assert store.outcomes(week, week + timedelta(days=7)) == outcomes  # found by the week index too
    assert [store.outcome(o.draft_id) for o in outcomes] == outcomes
    sends = [send_from_doc(doc) for doc in old["sends"].values()]
    assert [store.sends_for_round(s.round_id) for s in sends] == [[s] for s in sends]
    assert store.pending_sends() == [s for s in sends if s.state == SEND_PENDING] == [sends[1]]
    assert [store.ticket_contact(c["ticket_id"]) for c in old["contacts"].values()] == [
        (c["name"], c["email"]) for c in old["contacts"].values()
    ]
    assert {m["key"]: store.get_meta(m["key"]) for m in old["meta"].values()} == {
        "poll_cursor": "MTc3MjQ0MjAwMC4w",
        "digest_last_week": "2026-03-02",
    }


def test_a_single_file_store_is_migrated_once_and_kept_as_a_backup(tmp_path):
    path = _v1_store(tmp_path)
    v1_bytes = path.read_bytes()

    store = PartitionedStore(path)
    assert backup_path(path).read_bytes() == v1_bytes and PartitionedStore.is_partitioned(path)
    assert history_folder(path).is_dir()
    _assert_holds_the_v1_fixture(store)
    # ... and goes on from there: ids after the old ones, the round after the old ones.
    assert store.rated_count("t101r1C") == 1 and store.remove_reaction_vote("t101r1C", "U0AGENT2", 4)
    assert store.enqueue(105, "poll") and store.jobs(JOB_QUEUED)[-1].id == 5
    assert store.create_round(101, 9005, [("A", "m1")]).id == "t101r3"
    store.close()
    PartitionedStore(path).close()  # opened again: not migrated again
    assert backup_path(path).read_bytes() == v1_bytes
    assert isinstance(open_store(path, read_only=True), PartitionedStore)
    assert PartitionedStore(path, read_only=True).draft("t101r3A").model == "m1"


def test_a_read_only_open_of_a_single_file_store_reads_a_migrated_copy_and_writes_nothing(
    tmp_path, monkeypatch, caplog
):
    path = _v1_store(tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    store = open_store(path, read_only=True)
    assert "single-file layout" in caplog.text and "`draftdesk run` migrates it" in caplog.text
    _assert_holds_the_v1_fixture(store)
    with pytest.raises(PermissionError):
        store.set_meta("poll_cursor", "x")
    store.close()
    assert path.read_bytes() == V1_FIXTURE.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["draftdesk.json", "tmp"]  # no backup, no folder
    assert list(scratch.iterdir()) == []  # the copy is gone with the store


def test_a_read_only_open_of_a_damaged_single_file_names_the_users_file(tmp_path):
    path = tmp_path / "draftdesk.json"
    path.write_text('{"jobs": {"1": ')
    with pytest.raises(StoreDamaged, match=str(path)):
        open_store(path, read_only=True)


def test_a_migration_killed_halfway_is_redone_from_the_backup(tmp_path):
    path = _v1_store(tmp_path)
    backup_path(path).write_bytes(path.read_bytes())  # killed after the backup, before the hot file
    (history_folder(path) / "votes").mkdir(parents=True)
    (history_folder(path) / "votes" / "000004.json").write_text('{"votes": {"1": {"half": true}}}')
    _assert_holds_the_v1_fixture(PartitionedStore(path))


def test_a_message_look_up_reads_one_hours_index_file(tmp_path):
    store = PartitionedStore(tmp_path / "s.json")
    _history(store, range(1, 30))
    later = 1772442000 + 3 * 3600  # three hours later: another index file
    store.create_round(40, 10, [("A", "m1")])
    store.add_draft_message("t40r1A", "C1", f"{later}.2")
    index = sorted(p.name for p in (tmp_path / "s.json.d/messages").iterdir())
    assert index == ["2026-03-02T09.json", "2026-03-02T12.json"]
    # Break the first hour's file: the later message is still found, the earlier one is not read.
    (tmp_path / "s.json.d/messages/2026-03-02T09.json").write_text("not json")
    store.close()
    store = PartitionedStore(tmp_path / "s.json")
    assert store.draft_by_message("C1", f"{later}.2").id == "t40r1A"
    assert store.draft_by_message("C2", f"{later}.2") is None  # same ts, another channel
    with pytest.raises(RuntimeError):
        store.draft_by_message("C1", f"{1772442000 + 7}.2")


def test_messages_indexed_by_day_before_hourly_files_are_still_found(tmp_path):
    store = PartitionedStore(tmp_path / "s.json")
    store.create_round(7, 10, [("A", "m1")])
    ts = f"{1772442000 + 7}.2"
    day_file = tmp_path / "s.json.d/messages/2026-03-02.json"  # what the first partitioned version wrote
    day_file.write_text(json.dumps({"messages": {"1": {"channel": "C1", "ts": ts, "draft_id": "t7r1A"}}}))
    assert store.draft_by_message("C1", ts).id == "t7r1A"
    assert store.draft_by_message("C1", f"{1772442000 + 8}.2") is None


def test_opening_sweeps_leftover_temporary_files_from_every_partition_folder(tmp_path):
    store = PartitionedStore(tmp_path / "s.json")
    _history(store, range(1, 5))
    store.close()
    leftovers = [
        tmp_path / "s.json.d" / sub / f".{name}.json.k1l2.tmp"
        for sub, name in [("tickets", "000000"), ("votes", "000000"), ("messages", "x"), ("jobs", "y")]
    ]
    for leftover in leftovers:
        leftover.write_text('{"half')
    kept = tmp_path / "s.json.d" / "tickets" / "notes.txt"
    kept.write_text("an operator's file")
    PartitionedStore(tmp_path / "s.json").close()
    assert not any(p.exists() for p in leftovers) and kept.exists()
    for leftover in leftovers:
        leftover.write_text('{"half')
    PartitionedStore(tmp_path / "s.json", read_only=True).close()  # a reader never deletes
    assert all(p.exists() for p in leftovers)

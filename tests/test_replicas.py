"""Two or more replicas on one PostgreSQL database: each test runs two stores (or two processes) on
one real server (``tests.postgres_server``), as two `draftdesk run` replicas would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.config import WorkerSettings
from bot.drafting.worker import TicketProcessor, Worker
from bot.slack.digest import META_LAST_PERIOD_END, DigestService
from bot.store.pg.store import PostgresStore
from core.domain import JOB_QUEUED, JOB_RUNNING, Vote
from tests.recording_poster import RecordingPoster
from tests.test_digest import MODELS, MONDAY_9_KYIV, SETTINGS
from tests.test_worker import MODELS as DRAFT_MODELS
from tests.test_worker import ScriptedBackend, Tickets
from tests.test_worker import ticket as a_ticket


@pytest.fixture
def two(postgres_url) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    """Replicas A and B on one database."""
    a = PostgresStore(postgres_url, replica="A")
    b = PostgresStore(postgres_url, replica="B")
    yield a, b
    a.close()
    b.close()


def _together(*calls):
    """Runs the calls in threads released at once; their results, in order."""
    start = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        start.wait()
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_ticket_delivered_to_both_replicas_at_once_is_queued_once(two):
    a, b = two
    for ticket in range(20):
        added = _together(
            lambda ticket=ticket: a.enqueue(ticket, "webhook"),
            lambda ticket=ticket: b.enqueue(ticket, "webhook"),
        )
        assert sorted(added) == [False, True]
    assert len(a.jobs(JOB_QUEUED)) == 20


def test_each_job_is_claimed_by_one_replica(two):
    a, b = two
    for ticket in range(40):
        a.enqueue(ticket, "poll")

    def drain(store):
        claimed = []
        while (job := store.claim_next_job()) is not None:
            claimed.append(job.id)
        return claimed

    by_a, by_b = _together(lambda: drain(a), lambda: drain(b))
    assert sorted(by_a + by_b) == sorted(j.id for j in a.jobs()) and not set(by_a) & set(by_b)
    assert by_a and by_b  # SKIP LOCKED: both worked, neither waited for the other's rows
    assert {replica for _, replica, _ in a.job_claims()} == {"A", "B"}


def test_two_replicas_never_work_on_one_ticket_at_once(two):
    a, b = two
    a.enqueue(7, "webhook")
    first = a.claim_next_job()
    assert b.enqueue(7, "webhook")  # the ticket changed while A drafts it: a new job waits
    assert b.claim_next_job() is None  # ... until A is done with the ticket
    a.finish_job(first.id)
    second = b.claim_next_job()
    assert second.ticket_id == 7 and second.id != first.id


def test_a_starting_replica_leaves_the_live_replicas_jobs_alone(two, postgres_url):
    a, b = two
    a.enqueue(1, "webhook")
    job = a.claim_next_job()
    assert b.requeue_interrupted_jobs() == 0
    assert [(j.id, j.status) for j in b.jobs()] == [(job.id, JOB_RUNNING)]
    restarted = PostgresStore(postgres_url, replica="A")  # A again, after a restart: its jobs come back
    try:
        assert restarted.requeue_interrupted_jobs() == 1
        assert [j.status for j in b.jobs()] == [JOB_QUEUED]
    finally:
        restarted.close()


def test_a_replica_stopped_for_an_upgrade_hands_its_jobs_back_at_once(postgres_url):
    a = PostgresStore(postgres_url, replica="A")
    b = PostgresStore(postgres_url, replica="B")
    try:
        a.enqueue(4, "webhook")
        job = a.claim_next_job()
        assert b.claim_next_job() is None
        a.close()  # `draftdesk run` stopped (SIGTERM): its worker has finished or given up first
        taken = b.claim_next_job()
        assert (taken.id, taken.attempts) == (job.id, 2)
    finally:
        b.close()


def test_a_replica_that_lost_its_claim_leaves_the_job_to_the_new_claimer(postgres_url):
    a = PostgresStore(postgres_url, replica="A", lease=timedelta(milliseconds=300))
    b = PostgresStore(postgres_url, replica="B", lease=timedelta(seconds=60))
    try:
        a.enqueue(3, "webhook")
        job = a.claim_next_job()
        a._stop.set()  # A stops renewing (frozen, cut off): its lease runs out
        taken = _wait_for(b.claim_next_job, seconds=10)
        assert (taken.id, taken.attempts) == (job.id, 2)
        a.finish_job(job.id)  # A comes back and finishes: too late, the job is B's
        assert a.job_claims()[0][:2] == (job.id, "B")
        b.finish_job(job.id)
        assert a.job_claims() == []
    finally:
        a.close()
        b.close()


CLAIMER = textwrap.dedent(
    """
    import sys, time
    from datetime import timedelta
    from bot.store.pg.store import PostgresStore

    store = PostgresStore(sys.argv[1], replica="doomed", lease=timedelta(seconds=float(sys.argv[2])))
    job = store.claim_next_job()
    print(job.id, flush=True)
    time.sleep(600)  # renewing its lease until killed
    """
)


def test_a_replica_killed_with_sigkill_loses_its_claims_after_the_lease(postgres_url):
    lease = 1.5
    survivor = PostgresStore(postgres_url, replica="survivor")
    doomed = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, postgres_url, str(lease)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    try:
        survivor.enqueue(11, "webhook")
        job_id = int(doomed.stdout.readline())
        [(_, holder, first_lease)] = survivor.job_claims()
        assert holder == "doomed"
        renewed = _wait_for(lambda: survivor.job_claims()[0][2] > first_lease, seconds=10)
        assert renewed and survivor.claim_next_job() is None  # alive: its claim holds past a lease
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        killed_at = time.monotonic()
        taken = _wait_for(survivor.claim_next_job, seconds=15)
        assert taken.id == job_id and taken.attempts == 2
        assert time.monotonic() - killed_at <= lease + 5
        survivor.finish_job(job_id)
        assert survivor.jobs(JOB_RUNNING) == []
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
        survivor.close()


def test_exclusive_work_is_one_replicas_at_a_time(two):
    a, b = two
    with (
        a.exclusive("weekly_digest") as a_holds,
        b.exclusive("weekly_digest") as b_holds,
        b.exclusive("zendesk_poll") as b_polls,
    ):
        assert a_holds and not b_holds and b_polls
    with b.exclusive("weekly_digest") as b_holds:
        assert b_holds


def test_a_replica_waits_for_another_to_finish_a_tickets_thread_for_a_while(two):
    a, b = two
    with a.exclusive("post:7"):
        began = time.monotonic()
        with b.exclusive("post:7", wait=0.3) as b_holds:
            assert not b_holds and time.monotonic() - began >= 0.3
        answers: list[bool] = []

        def wait_for_it():
            with b.exclusive("post:7", wait=30) as held:
                answers.append(held)

        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        _wait_for(lambda: _waiting_for_advisory_locks(a) == 1, seconds=10)
    waiter.join(10)  # A let go: B has it
    assert answers == [True]


def _waiting_for_advisory_locks(store: PostgresStore) -> int:
    with store.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        return row.fetchone()["n"]


def test_a_ticket_another_replica_is_posting_is_retried_then_posted_once(two):
    a, b = two
    slack, tickets = RecordingPoster(), Tickets()
    tickets.tickets[1] = a_ticket()
    processor = TicketProcessor(
        a,
        tickets,
        slack,
        ScriptedBackend(),
        DRAFT_MODELS,
        "CDRAFTS",
        exclusive=a.exclusive,
        post_lock_wait=0.2,
    )
    worker = Worker(a, processor, WorkerSettings(max_attempts=3, retry_base_seconds=0))
    a.enqueue(1, "webhook")
    with b.exclusive("post:1"):  # B posts ticket 1's thread (a job it took over) and is not done
        assert worker.run_until_idle(limit=1) == 1
    assert slack.calls == [] and a.jobs(JOB_QUEUED)[0].last_error.startswith("PostingElsewhere")
    assert worker.run_until_idle() == 1
    assert [c.method for c in slack.calls] == ["post_parent"] + ["post_in_thread"] * 3


class _SlowChannel(RecordingPoster):
    """Holds its first channel post until released: the other replica tries meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.posting = threading.Event()
        self.release = threading.Event()

    def post(self, channel, text, blocks=None):
        self.posting.set()
        assert self.release.wait(10)
        return super().post(channel, text, blocks)


def test_the_weekly_digest_is_posted_once_across_replicas(two):
    a, b = two
    a.record_vote(Vote(1, "t1r1A", MODELS[0], "U1", 5, "button", MONDAY_9_KYIV - timedelta(days=2)))
    a.set_meta(META_LAST_PERIOD_END, (MONDAY_9_KYIV - timedelta(days=7)).isoformat())
    now = lambda: MONDAY_9_KYIV + timedelta(hours=1)  # noqa: E731
    slack_a, slack_b = _SlowChannel(), RecordingPoster()
    digest_a = DigestService(a, slack_a, SETTINGS, MODELS, clock=now, exclusive=a.exclusive)
    digest_b = DigestService(b, slack_b, SETTINGS, MODELS, clock=now, exclusive=b.exclusive)
    posted_by_a: list[bool] = []
    thread = threading.Thread(target=lambda: posted_by_a.append(digest_a.run_due()))
    thread.start()
    assert slack_a.posting.wait(10)
    assert not digest_b.run_due()  # A is posting it now
    slack_a.release.set()
    thread.join(10)
    assert posted_by_a == [True]
    assert not digest_b.run_due()  # posted: B reads so
    assert [c.method for c in slack_a.calls].count("post") == 1 and slack_b.calls == []
    assert datetime.fromisoformat(b.get_meta(META_LAST_PERIOD_END)) == MONDAY_9_KYIV


def test_votes_through_either_replica_are_one_table(two):
    a, b = two
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    a.record_vote(Vote(1, "t1r1A", "m1", "U1", 2, "reaction", at))
    b.record_vote(Vote(1, "t1r1A", "m1", "U1", 5, "button", at + timedelta(seconds=1)))  # same rater
    b.record_vote(Vote(1, "t1r1A", "m1", "U2", 4, "button", at))
    assert a.rated_count("t1r1A") == 2
    assert not a.remove_reaction_vote("t1r1A", "U1", 2)  # B's button vote replaced the reaction
    assert {(v.rater, v.score) for v in a.votes()} == {("U1", 5), ("U2", 4)}


def _wait_for(check, seconds: float):
    """Polls ``check`` until it gives something truthy; fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"nothing after {seconds} s")

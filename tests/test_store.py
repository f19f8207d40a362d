import json
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta

from bot.store import JOB_DONE, JOB_FAILED, JOB_QUEUED, Store
from core.domain import Vote

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def vote(draft="t1r1A", rater="U1", score=4, source="button", at=T0, model="m1"):
    return Vote(1, draft, model, rater, score, source, at)


def test_one_queued_job_per_ticket(tmp_path):
    store = Store(tmp_path / "s.json")
    assert store.enqueue(7, "webhook")
    for _ in range(4):
        assert not store.enqueue(7, "webhook")  # the same webhook delivered five times
    assert not store.enqueue(7, "poll")  # seen by the poller too
    assert len(store.jobs(JOB_QUEUED)) == 1
    job = store.claim_next_job()
    assert job is not None and job.ticket_id == 7 and job.attempts == 1
    # While it runs, a new change to the ticket queues a new job: the running one may be stale.
    assert store.enqueue(7, "webhook")


def test_retry_fail_and_restart(tmp_path):
    path = tmp_path / "s.json"
    store = Store(path)
    store.enqueue(1, "webhook", now=T0)
    job = store.claim_next_job(T0)
    store.retry_job(job.id, "boom", T0 + timedelta(seconds=30))
    assert store.claim_next_job(T0 + timedelta(seconds=10)) is None
    again = store.claim_next_job(T0 + timedelta(seconds=31))
    assert again.attempts == 2
    store.enqueue(2, "poll", now=T0)
    store.claim_next_job(T0)  # left running: the process dies here
    store.fail_job(again.id, "gave up")
    reopened = Store(path)
    assert reopened.requeue_interrupted_jobs() == 1
    assert [j.ticket_id for j in reopened.jobs(JOB_QUEUED)] == [2]
    assert reopened.jobs(JOB_FAILED)[0].last_error == "gave up"
    job = reopened.claim_next_job(T0)
    reopened.finish_job(job.id)
    assert reopened.jobs(JOB_DONE)[0].ticket_id == 2


def test_latest_vote_wins_and_reaction_removal(tmp_path):
    store = Store(tmp_path / "s.json")
    store.record_vote(vote(score=2, source="reaction"))
    store.record_vote(vote(score=5, source="button", at=T0 + timedelta(minutes=1)))
    store.record_vote(vote(rater="U2", score=3, source="reaction"))
    assert store.rated_count("t1r1A") == 2
    assert {(v.rater, v.score, v.source) for v in store.votes()} == {
        ("U1", 5, "button"),
        ("U2", 3, "reaction"),
    }
    # U1 removes the :two: reaction they had added before clicking 5: the button vote stays.
    assert not store.remove_reaction_vote("t1r1A", "U1", 2)
    assert store.remove_reaction_vote("t1r1A", "U2", 3)
    assert [v.rater for v in store.votes()] == ["U1"]


def test_vote_window(tmp_path):
    store = Store(tmp_path / "s.json")
    for day in range(5):
        store.record_vote(vote(draft=f"d{day}", at=T0 + timedelta(days=day)))
    picked = store.votes(T0 + timedelta(days=1), T0 + timedelta(days=3))
    assert [v.draft_id for v in picked] == ["d1", "d2"]


def test_rounds_drafts_and_message_lookup(tmp_path):
    store = Store(tmp_path / "s.json")
    store.save_ticket_thread(5, "C1", "100.1")
    doc = store.create_round(5, 11, [("A", "gptj"), ("B", "llama"), ("C", "llama-ft")])
    assert doc["number"] == 1
    assert store.round_for(5, 11)["id"] == "t5r1"
    store.save_generated("t5r1A", "hello", None)
    assert not store.draft_generated("t5r1")
    store.save_generated("t5r1B", None, "OOM")
    store.save_generated("t5r1C", "hi", None)
    assert store.draft_generated("t5r1")
    store.add_draft_message("t5r1A", "C1", "100.2")
    store.add_draft_message("t5r1A", "C1", "100.3")
    found = store.draft_by_message("C1", "100.2")
    assert found.id == "t5r1A" and found.model == "gptj" and found.vote_ts == "100.3"
    second = store.create_round(5, 12, [("A", "llama")])
    assert second["number"] == 2 and store.ticket_thread(5) == ("C1", "100.1")
    assert [d.id for d in store.drafts_for_ticket(5)] == ["t5r1A", "t5r1B", "t5r1C", "t5r2A"]


def test_meta_survives_reopen(tmp_path):
    Store(tmp_path / "s.json").set_meta("poll_cursor", "abc")
    assert Store(tmp_path / "s.json").get_meta("poll_cursor") == "abc"


def test_killing_the_writer_never_corrupts_the_file(tmp_path):
    """SIGKILL a process in the middle of a stream of writes: the file is always whole JSON."""
    path = tmp_path / "s.json"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from bot.store import Store
        store = Store(Path({str(path)!r}))
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
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = json.loads(path.read_text())  # never torn
        store = Store(path)
        counter = store.get_meta("counter")
        assert counter >= 19
        # every job enqueued before the last recorded counter is there
        assert {j.ticket_id for j in store.jobs()} >= set(range(counter + 1))
        assert "jobs" in data
    Store(path)  # a writer's open sweeps temporary files a killed writer left behind
    assert not list(tmp_path.glob(".s.json.*.tmp"))


def test_read_only_store_does_not_write(tmp_path):
    path = tmp_path / "s.json"
    Store(path).enqueue(1, "poll")
    before = path.read_bytes()
    ro = Store(path, read_only=True)
    assert len(ro.jobs()) == 1
    assert path.read_bytes() == before

"""The drafting pipeline of `draftdesk run` (bot/drafting/pipeline.py): an upstream that makes us wait
holds only the tickets that need it. Real zenpy and slack_sdk against the loopback stand-ins, the partitioned
store on disk, a scripted model runtime."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.config import WorkerSettings
from bot.drafting.pipeline import Pipeline, UpstreamGate
from bot.drafting.worker import TicketProcessor, Worker
from bot.store.partitioned import PartitionedStore
from core.domain import JOB_DONE, JOB_QUEUED, JOB_RUNNING
from integrations.slack import SlackPoster, make_web_client
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import FakeZendesk
from integrations.zendesk import RetryPolicy, ZendeskGateway
from tests.crash_harness import FAIL_C, MODELS, ScriptedBackend, thread_census
from tests.recording_poster import RecordingPoster
from tests.waiting import wait_until

CHANNEL = "CDRAFTS"


@dataclass
class Running:
    store: PartitionedStore
    slack: FakeSlack
    zendesk: FakeZendesk
    backend: ScriptedBackend
    worker: Worker
    pipeline: Pipeline

    def drafted_and_posted(self, ticket_id: int) -> bool:
        drafts = self.store.drafts_for_ticket(ticket_id)
        return len(drafts) == 3 and all(d.vote_ts for d in drafts)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    """The pipeline over real HTTP, each Zendesk wait interruptible so the test ends at once."""
    ended = threading.Event()
    with FakeSlack() as slack, FakeZendesk() as zendesk:
        zendesk.add_user(100, "Maria Schmidt", "maria@example.com")
        for tid in range(1, 6):
            zendesk.add_ticket(tid, f"Backup {tid} stuck", 100, comments=[(100, "It is stuck at 99%.", True)])
        zendesk.add_ticket(6, "Backup 6 stuck", 100, comments=[(100, f"Stuck. {FAIL_C}", True)])
        gateway = ZendeskGateway.from_settings(
            zendesk.url, "agent@example.com", "token", retry=RetryPolicy(max_retries=3), sleep=ended.wait
        )
        poster = SlackPoster(make_web_client("xoxb-test", base_url=slack.api_url))
        store = PartitionedStore(tmp_path / "store.json")
        backend = ScriptedBackend(seconds_per_batch=0.2)
        processor = TicketProcessor(store, gateway, poster, backend, MODELS, CHANNEL)
        settings = WorkerSettings(
            batch_tickets=8, batch_wait_seconds=0.3, fetch_threads=4, retry_base_seconds=1
        )
        worker = Worker(store, processor, settings)
        pipeline = Pipeline(worker)
        stop = threading.Event()
        thread = threading.Thread(target=pipeline.run, args=(stop,), daemon=True)
        thread.start()
        try:
            yield Running(store, slack, zendesk, backend, worker, pipeline)
        finally:
            ended.set()
            stop.set()
            worker.wake.set()
            thread.join(timeout=30)
            store.close()


def test_a_ticket_whose_reads_zendesk_rate_limits_holds_up_no_other_ticket(running: Running) -> None:
    # Every read of ticket 1 is answered 429 "wait 30 s"; it is queued first, so a worker that reads,
    # drafts and posts in series would keep every other ticket waiting for at least 30 s.
    running.zendesk.fail_next("/api/v2/tickets/1", 429, {"Retry-After": "30"}, times=100)
    for tid in range(1, 6):
        running.store.enqueue(tid, "webhook")
    running.worker.wake.set()

    wait_until(
        lambda: sorted(j.ticket_id for j in running.store.jobs(JOB_DONE)) == [2, 3, 4, 5],
        timeout=20,
        what="tickets 2-5 drafted and posted while ticket 1 waits out its 429",
    )
    assert all(running.drafted_and_posted(tid) for tid in range(2, 6))
    assert running.store.ticket_thread(1) is None  # ticket 1 still waits for Zendesk
    reads_of_1 = [r for r in running.zendesk.requests if r.path.startswith("/api/v2/tickets/1")]
    assert len(reads_of_1) == 1  # asked once, then waiting out the Retry-After, not hammering
    assert max(running.backend.batches) > 1  # the ready tickets were still drafted together


def test_ticket_reads_run_side_by_side_while_one_waits(running: Running) -> None:
    running.zendesk.fail_next("/api/v2/tickets/3", 503, {"Retry-After": "30"}, times=100)
    for tid in (3, 1, 2):
        running.store.enqueue(tid, "poll")
    running.worker.wake.set()
    wait_until(lambda: running.drafted_and_posted(1) and running.drafted_and_posted(2), timeout=20)
    assert running.store.ticket_thread(3) is None


def test_a_webhook_delivered_five_times_while_a_model_fails_posts_one_notice(running: Running) -> None:
    running.store.enqueue(6, "webhook")
    running.worker.wake.set()
    wait_until(lambda: running.store.jobs(JOB_RUNNING), timeout=20, what="the first delivery in flight")
    for _ in range(4):  # the other deliveries arrive while the first is worked on
        running.store.enqueue(6, "webhook")
        running.worker.wake.set()
    wait_until(
        lambda: not running.store.jobs(JOB_QUEUED) and not running.store.jobs(JOB_RUNNING),
        timeout=20,
        what="every job of ticket 6 done",
    )
    assert len(running.store.jobs(JOB_DONE)) >= 2
    [entry] = thread_census(running.slack.messages[CHANNEL]).values()
    assert entry.parents == 1 and sorted(entry.drafts.values()) == [1, 1]
    assert list(entry.notices.values()) == [1]  # "1 of 3 models failed", once


class StalledSlack(RecordingPoster):
    """Slack taking nothing until released (an outage, or a 429 being waited out)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def post_parent(self, channel, text, blocks=None, mark=None):
        self.release.wait(timeout=60)
        return super().post_parent(channel, text, blocks, mark)


def test_while_slack_is_stalled_the_models_keep_drafting(tmp_path: Path) -> None:
    from tests.test_worker import Tickets, ticket

    tickets, slack, backend = Tickets(), StalledSlack(), ScriptedBackend(seconds_per_batch=0.05)
    for tid in range(1, 7):
        tickets.tickets[tid] = ticket(tid)
    store = PartitionedStore(tmp_path / "store.json")
    processor = TicketProcessor(store, tickets, slack, backend, MODELS, CHANNEL)
    settings = WorkerSettings(batch_tickets=2, batch_wait_seconds=0, post_threads=1)
    worker = Worker(store, processor, settings)
    stop = threading.Event()
    thread = threading.Thread(target=Pipeline(worker).run, args=(stop,), daemon=True)
    thread.start()
    try:
        for tid in range(1, 7):
            store.enqueue(tid, "webhook")
        worker.wake.set()
        wait_until(
            lambda: (
                all(d.text for tid in range(1, 7) for d in store.drafts_for_ticket(tid))
                and len(store.drafts_for_ticket(6)) == 3
            ),
            timeout=20,
            what="every ticket drafted while Slack takes nothing",
        )
        assert slack.calls == [] and len(backend.batches) >= 3  # several batches, nothing posted
        slack.release.set()
        wait_until(lambda: len(store.jobs(JOB_DONE)) == 6, timeout=20, what="all posted once Slack is back")
        assert len(slack.calls_to("post_parent")) == 6 and len(slack.calls_to("post_in_thread")) == 18
    finally:
        slack.release.set()
        stop.set()
        worker.wake.set()
        thread.join(timeout=30)
        store.close()


def test_an_upstream_gate_holds_its_stage_for_the_retry_after() -> None:
    now = [100.0]
    gate = UpstreamGate("Slack", clock=lambda: now[0])
    stop = threading.Event()
    assert gate.remaining() == 0 and gate.wait(stop)  # open
    gate.hold(30)
    gate.hold(5)  # a shorter ask never shortens the wait
    assert gate.remaining() == 30
    now[0] += 29
    assert gate.remaining() == 1  # still closed after 29 of 30 s
    now[0] += 1.5
    assert gate.remaining() == 0 and gate.wait(stop)
    gate.hold(60)
    stop.set()
    assert gate.wait(stop) is False  # shutdown is not held up by the gate


class TooSmallContext(ScriptedBackend):
    def context_limit(self, model_name: str) -> int:
        return 5  # no prompt fits: every model fails before generation


def test_a_ticket_no_prompt_fits_is_retried_then_told_in_its_thread(tmp_path: Path) -> None:
    from tests.test_worker import Tickets, ticket

    tickets, slack, backend = Tickets(), RecordingPoster(), TooSmallContext(seconds_per_batch=0)
    tickets.tickets[1] = ticket(1)
    store = PartitionedStore(tmp_path / "store.json")
    processor = TicketProcessor(store, tickets, slack, backend, MODELS, CHANNEL)
    worker = Worker(store, processor, WorkerSettings(max_attempts=2, retry_base_seconds=0))
    stop = threading.Event()
    thread = threading.Thread(target=Pipeline(worker).run, args=(stop,), daemon=True)
    thread.start()
    try:
        store.enqueue(1, "webhook")
        worker.wake.set()
        wait_until(lambda: len(store.jobs(JOB_DONE)) == 1, timeout=20, what="the job done after its retry")
        [job] = store.jobs(JOB_DONE)
        assert job.attempts == 2 and backend.batches == []  # retried once; nothing was generated
        drafts = store.drafts_for_ticket(1)
        assert all(d.text is None and "could not build the prompt" in d.error for d in drafts)
        texts = [m.text for m in slack.thread(*store.ticket_thread(1))]
        assert len(texts) == 2 and "All 3 models failed" in texts[1]  # the parent and the notice
    finally:
        stop.set()
        worker.wake.set()
        thread.join(timeout=30)
        store.close()

"""The health report's rules: cached upstream checks that never hang a request, and the worker's
and the queue's thresholds, answered as 200 or 503 by the real web server."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests

from bot.config import HealthSettings
from bot.operations.health import CachedCheck, HealthService
from bot.operations.web import DraftdeskWSGI, WebServer
from bot.store.memory import MemoryStore
from core.domain import utcnow
from tests.waiting import wait_until


def test_a_slow_check_answers_with_its_last_result_instead_of_hanging():
    release = threading.Event()
    calls = []

    def slow() -> tuple[bool, str]:
        calls.append(1)
        release.wait(30)
        return True, "fine"

    check = CachedCheck("slow", slow, interval=3600, timeout=0.2)
    assert check.result() == {"ok": None, "detail": "first check still running after 0.2s"}
    assert check.result()["ok"] is None and len(calls) == 1  # one check in flight, not one per request
    release.set()
    wait_until(lambda: check.result()["ok"] is True, timeout=10, what="the check's result")
    assert check.result()["detail"] == "fine" and len(calls) == 1  # reused within the interval


def test_a_failing_check_is_reported_and_made_again_after_its_interval():
    answers = iter([(False, "down")] + [(True, "up")] * 100)
    check = CachedCheck("flaky", lambda: next(answers), interval=0.01, timeout=5)
    assert check.result()["ok"] is False
    wait_until(lambda: check.result()["ok"] is True, timeout=10, what="checked again")


def test_a_check_that_raises_is_unhealthy_with_the_reason():
    def broken() -> tuple[bool, str]:
        raise ConnectionError("no route")

    assert (
        CachedCheck("broken", broken, interval=60, timeout=5).result()["detail"]
        == "ConnectionError: no route"
    )


def service(store, beat_age=1.0, alive=True, **limits) -> HealthService:
    settings = HealthSettings(**limits)
    return HealthService(
        settings, {"slack": lambda: (True, "ok")}, store.jobs, lambda: beat_age, lambda: alive
    )


def test_the_worker_and_the_queue_degrade_the_report_past_their_limits():
    store = MemoryStore()
    assert service(store).report()["ok"] is True
    stale = service(store, beat_age=700, worker_stale_seconds=600).report()
    assert stale["ok"] is False and stale["problems"][0].startswith("worker: no heartbeat for 700s")
    stopped = service(store, alive=False).report()
    assert stopped["checks"]["worker"]["detail"].startswith("the worker thread has stopped")

    store.enqueue(1, "webhook", now=utcnow() - timedelta(seconds=1000))
    store.enqueue(2, "webhook")
    report = service(store, queue_stale_seconds=900).report()
    assert report["ok"] is False and report["queued_jobs"] == 2
    assert report["checks"]["queue"]["oldest_queued_age_seconds"] >= 1000
    assert service(store, queue_stale_seconds=2000).report()["ok"] is True


def test_the_queue_detail_names_failed_jobs_and_what_to_do():
    store = MemoryStore()
    assert service(store).report()["checks"]["queue"]["detail"] == "nothing queued"
    store.enqueue(1, "webhook")
    store.fail_job(store.claim_next_job().id, "Zendesk answered HTTP 503")
    report = service(store).report()
    assert report["ok"] is True and report["failed_jobs"] == 1  # the bot drafts on
    detail = report["checks"]["queue"]["detail"]
    assert detail.startswith("nothing queued; 1 job failed for good") and "jobs retry --failed" in detail


def test_healthz_answers_503_when_degraded_and_metrics_in_prometheus_text():
    store = MemoryStore()
    healthy = {"value": True}

    def health() -> dict:
        return service(store, alive=healthy["value"]).report()

    wsgi = DraftdeskWSGI(
        None, None, health, 1024, metrics=lambda: (b"draftdesk_up 1\n", "text/plain; version=0.0.4")
    )
    server = WebServer(wsgi, "127.0.0.1", 0)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        healthy["value"] = False
        response = requests.get(f"{base}/healthz", timeout=5)
        assert response.status_code == 503 and response.json()["ok"] is False
        metrics = requests.get(f"{base}/metrics", timeout=5)
        assert metrics.text == "draftdesk_up 1\n" and metrics.headers["Content-Type"].startswith("text/plain")
    finally:
        server.stop()


def test_a_runtime_that_raises_counts_every_draft_it_was_asked_for_as_failed():
    from bot.operations.metrics import Metrics
    from bot.operations.observed import ObservedBackend

    class Broken:
        def generate_many(self, batch):
            raise RuntimeError("CUDA out of memory")

    metrics = Metrics()
    backend = ObservedBackend(Broken(), metrics)
    with pytest.raises(RuntimeError, match="CUDA out of memory"):  # the worker still gets the error
        backend.generate_many([{"a": "p", "b": "p"}, {"a": "p"}])
    assert (
        metrics.registry.get_sample_value("draftdesk_drafts_total", {"model": "a", "outcome": "failed"}) == 2
    )
    assert (
        metrics.registry.get_sample_value("draftdesk_drafts_total", {"model": "b", "outcome": "failed"}) == 1
    )
    assert (
        Metrics().registry.get_sample_value("draftdesk_drafts_total", {"model": "a", "outcome": "failed"})
        is None
    )


def test_sends_are_counted_once_finished_and_taken_back_reactions_apart():
    from dataclasses import replace

    from bot.operations.metrics import Metrics
    from bot.operations.observed import ObservedStore
    from core.domain import SEND_FAILED, SEND_PENDING, SEND_SENT, SendRecord, Vote

    metrics = Metrics()
    store = ObservedStore(MemoryStore(), metrics)
    store.create_round(7, 70, [("A", "m1")])
    pending = SendRecord("t7r1As1", 7, "t7r1", "t7r1A", "U1", SEND_PENDING, False, False, "h", utcnow())
    store.record_send(pending)
    store.record_send(replace(pending, state=SEND_FAILED, error="Zendesk answered 503"))
    store.record_send(replace(pending, id="t7r1As2", public=True))
    store.record_send(replace(pending, id="t7r1As2", public=True, state=SEND_SENT, comment_id=9))

    def sends(outcome: str, kind: str) -> float | None:
        return metrics.registry.get_sample_value("draftdesk_sends_total", {"outcome": outcome, "kind": kind})

    assert (sends("failed", "internal"), sends("sent", "public"), sends("sent", "internal")) == (1, 1, None)
    store.record_vote(Vote(7, "t7r1A", "m1", "U1", 5, "reaction", utcnow()))
    assert store.remove_reaction_vote("t7r1A", "U1", 5) and not store.remove_reaction_vote("t7r1A", "U1", 5)
    assert metrics.registry.get_sample_value("draftdesk_votes_removed_total") == 1
    text = metrics.render()[0].decode()
    assert "draftdesk_sends_total" in text and "_created" not in text  # no timestamp series beside each

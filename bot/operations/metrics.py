"""The bot's Prometheus metrics, served at GET /metrics.

Each app has its own ``CollectorRegistry`` (never prometheus_client's global one), so two apps in one
process, as in the tests, count apart. The counters are fed by the wrappers in ``bot.operations.observed``,
which watch the store, the chat, Zendesk and the model runtime through their ports; the queue's
gauges are read from the store when Prometheus scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.domain import JOB_FAILED, JOB_QUEUED, JOB_RUNNING, Job, utcnow
from core.ports import ChatError

# A ``*_created`` timestamp beside every counter doubles the series and no dashboard reads it.
# (prometheus_client's switch is process-wide: this module is the process's only exporter.)
disable_created_metrics()

# Seconds to generate one ticket's drafts: a GPU batch takes seconds, a CPU one minutes.
DRAFT_SECONDS_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


def error_status(exc: BaseException) -> str:
    """A short, low-cardinality label for an upstream error: Slack's error code, an HTTP status."""
    if isinstance(exc, ChatError):
        return exc.code
    status = getattr(exc, "status", None)
    return str(status) if status else type(exc).__name__


class Metrics:
    """Every metric of one app, in its own registry."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        self._monotonic = monotonic
        self.started = monotonic()
        self.worker_beat: float | None = None  # when the worker last touched the queue
        r = self.registry
        self.tickets_queued = Counter(
            "draftdesk_tickets_queued", "Tickets put in the queue, by intake", ["source"], registry=r
        )
        self.drafts = Counter(
            "draftdesk_drafts", "Drafts generated (ok) or failed, by model", ["model", "outcome"], registry=r
        )
        self.tickets_posted = Counter(
            "draftdesk_tickets_posted",
            "Rounds of drafts posted in Slack (one per customer message)",
            registry=r,
        )
        self.jobs_failed = Counter(
            "draftdesk_jobs_failed", "Jobs failed for good (after the last attempt, or not found)", registry=r
        )
        self.job_retries = Counter("draftdesk_job_retries", "Jobs put back for another attempt", registry=r)
        self.draft_seconds = Histogram(
            "draftdesk_draft_seconds",
            "Seconds to generate one ticket's drafts (the batch it was generated in)",
            buckets=DRAFT_SECONDS_BUCKETS,
            registry=r,
        )
        self.generated_tokens = Counter(
            "draftdesk_generated_tokens", "Tokens generated, by model", ["model"], registry=r
        )
        self.tokens_per_second = Gauge(
            "draftdesk_tokens_per_second", "Tokens per second of the last batch of drafts", registry=r
        )
        self.votes = Counter(
            "draftdesk_votes",
            "Ratings given, by button or reaction (a changed rating counts again)",
            ["source"],
            registry=r,
        )
        self.votes_removed = Counter(
            "draftdesk_votes_removed", "Ratings taken back by removing the reaction", registry=r
        )
        self.sends = Counter(
            "draftdesk_sends",
            "Drafts sent to Zendesk by agents, by outcome (sent, failed) and kind (internal, public)",
            ["outcome", "kind"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "draftdesk_upstream_errors",
            "Failed calls to Slack, Zendesk or a model server, by service and status",
            ["service", "status"],
            registry=r,
        )

    # ---- what the observing wrappers call ------------------------------------------------------

    def beat(self) -> None:
        """The worker is alive: it just claimed, finished or waited for a job."""
        self.worker_beat = self._monotonic()

    def worker_beat_age(self) -> float:
        """Seconds since the worker last touched the queue (since start-up, before its first touch)."""
        return self._monotonic() - (self.worker_beat if self.worker_beat is not None else self.started)

    def upstream_error(self, service: str, exc: BaseException) -> None:
        self.upstream_errors.labels(service, error_status(exc)).inc()

    def batch_generated(self, tickets: int, seconds: float, tokens_by_model: dict[str, int]) -> None:
        for _ in range(tickets):
            self.draft_seconds.observe(seconds)
        for model, tokens in tokens_by_model.items():
            self.generated_tokens.labels(model).inc(tokens)
        total = sum(tokens_by_model.values())
        if seconds > 0 and total:
            self.tokens_per_second.set(total / seconds)

    # ---- the queue, read at scrape time ----------------------------------------------------------

    def watch_queue(self, jobs: Callable[[], list[Job]]) -> None:
        """Gauges of the queue from ``jobs`` (every job in the queue: queued, running, failed)."""
        self.registry.register(_QueueCollector(jobs, self.worker_beat_age))

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def oldest_queued_age(jobs: list[Job], now: datetime) -> float | None:
    """Seconds since the oldest queued job was queued; None with an empty queue."""
    queued = [job.created_at for job in jobs if job.status == JOB_QUEUED]
    return (now - min(queued)).total_seconds() if queued else None


class _QueueCollector(Collector):
    def __init__(self, jobs: Callable[[], list[Job]], beat_age: Callable[[], float]) -> None:
        self._jobs = jobs
        self._beat_age = beat_age

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = self._jobs()
        by_status = GaugeMetricFamily("draftdesk_jobs", "Jobs in the queue now, by status", labels=["status"])
        for status in (JOB_QUEUED, JOB_RUNNING, JOB_FAILED):
            by_status.add_metric([status], sum(job.status == status for job in jobs))
        yield by_status
        age = oldest_queued_age(jobs, utcnow())
        yield GaugeMetricFamily(
            "draftdesk_oldest_queued_job_age_seconds",
            "Seconds the oldest queued job has waited (0 with an empty queue)",
            value=age or 0.0,
        )
        yield GaugeMetricFamily(
            "draftdesk_worker_heartbeat_age_seconds",
            "Seconds since the worker last touched the queue",
            value=self._beat_age(),
        )

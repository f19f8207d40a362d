"""Metrics without touching the services: wrappers that watch the ports (store, chat, Zendesk, models).

``ObservedStore`` counts what the services record (tickets queued, rounds posted, jobs failed, votes,
sends) and takes the worker's heartbeat from its calls to the queue; ``ObservedGateway`` counts the
failed calls to an upstream; ``ObservedBackend`` times each batch of drafts and counts its tokens. Every
other call passes through unchanged, so a new port method needs no change here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.operations.metrics import Metrics
from core.domain import SEND_FAILED, SEND_SENT, DraftResult, Job, SendRecord, Vote
from core.ports import DraftBackend, GatewayError, Store


class ObservedStore:
    """A ``Store`` that feeds ``metrics``; every method is the wrapped store's."""

    def __init__(self, store: Store, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def enqueue(self, ticket_id: int, source: str, now: datetime | None = None) -> bool:
        added = self._store.enqueue(ticket_id, source, now)
        if added:
            self._metrics.tickets_queued.labels(source).inc()
        return added

    # The worker's loop calls one of these every few seconds, or after each batch: its heartbeat.
    def claim_next_job(self, now: datetime | None = None) -> Job | None:
        self._metrics.beat()
        return self._store.claim_next_job(now)

    def next_job_due(self) -> datetime | None:
        self._metrics.beat()
        return self._store.next_job_due()

    def finish_job(self, job_id: int) -> None:
        self._store.finish_job(job_id)
        self._metrics.beat()

    def retry_job(self, job_id: int, error: str, not_before: datetime) -> None:
        self._store.retry_job(job_id, error, not_before)
        self._metrics.job_retries.inc()
        self._metrics.beat()

    def fail_job(self, job_id: int, error: str) -> None:
        self._store.fail_job(job_id, error)
        self._metrics.jobs_failed.inc()
        self._metrics.beat()

    def mark_round_posted(self, round_id: str) -> None:
        self._store.mark_round_posted(round_id)
        self._metrics.tickets_posted.inc()

    def record_vote(self, vote: Vote) -> None:
        self._store.record_vote(vote)
        self._metrics.votes.labels(vote.source).inc()

    def remove_reaction_vote(self, draft_id: str, rater: str, score: int) -> bool:
        removed = self._store.remove_reaction_vote(draft_id, rater, score)
        if removed:
            self._metrics.votes_removed.inc()
        return removed

    def record_send(self, send: SendRecord) -> None:
        """Counted once it is finished: a send is recorded pending first, then sent or failed."""
        self._store.record_send(send)
        if send.state in (SEND_SENT, SEND_FAILED):
            self._metrics.sends.labels(send.state, "public" if send.public else "internal").inc()


class ObservedGateway:
    """Any upstream client (``ChatPoster``, the Zendesk gateway): a ``GatewayError`` it raises is
    counted under ``service`` and its status, then raised as it was."""

    def __init__(self, inner: Any, metrics: Metrics, service: str) -> None:
        self._inner = inner
        self._metrics = metrics
        self._service = service

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def observed(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except GatewayError as exc:
                self._metrics.upstream_error(self._service, exc)
                raise

        return observed


class ObservedBackend:
    """A ``DraftBackend`` whose batches are timed and whose drafts and tokens are counted."""

    def __init__(
        self, backend: DraftBackend, metrics: Metrics, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._backend = backend
        self._metrics = metrics
        self._monotonic = monotonic

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def count_tokens(self, model_name: str, text: str) -> int:
        return self._backend.count_tokens(model_name, text)

    def context_limit(self, model_name: str) -> int:
        return self._backend.context_limit(model_name)

    def generate(self, prompts: Mapping[str, str]) -> list[DraftResult]:
        return self.generate_many([prompts])[0]

    def generate_many(self, batch: Sequence[Mapping[str, str]]) -> list[list[DraftResult]]:
        started = self._monotonic()
        try:
            results = self._backend.generate_many(batch)
        except Exception:  # the whole runtime failed: every draft asked for is a failed one
            for prompts in batch:
                for model in prompts:
                    self._metrics.drafts.labels(model, "failed").inc()
            raise
        seconds = self._monotonic() - started
        tokens: dict[str, int] = {}
        for ticket in results:
            for result in ticket:
                self._metrics.drafts.labels(result.model, "ok" if result.ok else "failed").inc()
                if result.ok:
                    tokens[result.model] = tokens.get(result.model, 0) + result.completion_tokens
        self._metrics.batch_generated(len(batch), seconds, tokens)
        self._metrics.beat()
        return results

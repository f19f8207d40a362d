"""An operator's changes to the draft queue, with what to tell them: retry one job, retry every
failed job, drop a job. The same whether `draftdesk jobs` holds the store itself or the running
bot carries them out for it (``bot.store.requests``)."""

from __future__ import annotations

from dataclasses import dataclass

from core.domain import JOB_FAILED, JOB_QUEUED, JOB_RUNNING, Job
from core.ports import Store

IN_QUEUE = (JOB_QUEUED, JOB_RUNNING, JOB_FAILED)
NOT_IN_QUEUE = "is not in the queue (finished, dropped, or a wrong id)"

RETRY, RETRY_FAILED, DROP = "retry", "retry_failed", "drop"
ACTIONS = (RETRY, RETRY_FAILED, DROP)


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    message: str  # one line: what changed, or why nothing did
    changed_queue: bool = True  # when ok: the worker should look at the queue again


def _in_queue(store: Store, job_id: int) -> Job | None:
    return next((job for status in IN_QUEUE for job in store.jobs(status) if job.id == job_id), None)


def retry_job(store: Store, job_id: int) -> ActionResult:
    job = _in_queue(store, job_id)
    queued = store.requeue_job(job_id) if job is not None and job.status != JOB_RUNNING else None
    if job is None or queued is None:  # unknown, or running (possibly since it was read)
        return ActionResult(False, f"job {job_id} {'is running' if job else NOT_IN_QUEUE}")
    joined = "" if queued.id == job.id else f", joined job {queued.id} already queued for the ticket"
    return ActionResult(True, f"job {job.id} (ticket {job.ticket_id}) back in the queue, due now{joined}")


def retry_failed(store: Store) -> ActionResult:
    requeued = sum(1 for job in store.jobs(JOB_FAILED) if store.requeue_job(job.id) is not None)
    return ActionResult(True, f"{requeued} failed job(s) back in the queue")


def drop_job(store: Store, job_id: int) -> ActionResult:
    job = _in_queue(store, job_id)
    if job is None or not store.drop_job(job_id):
        return ActionResult(False, f"job {job_id} {'is running' if job else NOT_IN_QUEUE}")
    return ActionResult(True, f"job {job.id} (ticket {job.ticket_id}, {job.status}) dropped")


def perform(store: Store, action: str, job_id: int | None) -> ActionResult:
    """One of ``ACTIONS``; ``job_id`` for all but RETRY_FAILED."""
    if action == RETRY_FAILED:
        return retry_failed(store)
    if action not in ACTIONS or job_id is None:
        return ActionResult(False, f"unknown request: {action!r} (job {job_id})")
    return retry_job(store, job_id) if action == RETRY else drop_job(store, job_id)

"""The in-memory store: the ``core.ports.Store`` contract without a file, for tests and experiments.

Same semantics as the TinyDB store (``tests/test_store.py`` runs against both); nothing survives
the process. Records are frozen dataclasses, replaced on every change, so what a caller holds is
a snapshot, as with the file store.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bot.store.documents import ts_time
from core.domain import (
    JOB_DONE,
    JOB_FAILED,
    JOB_QUEUED,
    JOB_RUNNING,
    NEGATIVE_SCORES,
    ROUND_GENERATING,
    ROUND_POSTED,
    SEND_PENDING,
    DraftOutcome,
    DraftRecord,
    Job,
    RoundRecord,
    SendRecord,
    Vote,
    draft_id_for,
    round_id_for,
    utcnow,
)


class MemoryStore:
    """Thread-safe dictionaries behind the Store contract."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._job_ids = itertools.count(1)
        self._jobs: dict[int, Job] = {}
        self._threads: dict[int, tuple[str, str]] = {}
        self._pending_threads: dict[int, tuple[str, datetime]] = {}
        self._rounds: dict[str, RoundRecord] = {}
        self._drafts: dict[str, DraftRecord] = {}
        self._outcomes: dict[str, DraftOutcome] = {}
        self._votes: dict[tuple[str, str], Vote] = {}  # (draft id, rater) → the rater's latest vote
        self._meta: dict[str, str] = {}  # key → the value as JSON
        self._sends: dict[str, SendRecord] = {}
        self._contacts: dict[int, tuple[str, str]] = {}

    def close(self) -> None:
        """Nothing to release; the data stays readable until the object is dropped."""

    # ---- jobs ---------------------------------------------------------------------------------

    def enqueue(self, ticket_id: int, source: str, now: datetime | None = None) -> bool:
        now = (now or utcnow()).astimezone(UTC)
        with self._lock:
            if any(j.ticket_id == ticket_id and j.status == JOB_QUEUED for j in self._jobs.values()):
                return False
            job_id = next(self._job_ids)
            self._jobs[job_id] = Job(job_id, ticket_id, source, 0, JOB_QUEUED, now, now)
            return True

    def claim_next_job(self, now: datetime | None = None) -> Job | None:
        now = now or utcnow()
        with self._lock:
            due = [j for j in self._jobs.values() if j.status == JOB_QUEUED and j.not_before <= now]
            if not due:
                return None
            job = min(due, key=lambda j: (j.not_before, j.id))
            return self._set_job(job.id, status=JOB_RUNNING, attempts=job.attempts + 1)

    def finish_job(self, job_id: int) -> None:
        self._set_job(job_id, status=JOB_DONE, last_error=None)

    def retry_job(self, job_id: int, error: str, not_before: datetime) -> None:
        self._set_job(job_id, status=JOB_QUEUED, last_error=error, not_before=not_before.astimezone(UTC))

    def fail_job(self, job_id: int, error: str) -> None:
        self._set_job(job_id, status=JOB_FAILED, last_error=error)

    def requeue_interrupted_jobs(self) -> int:
        with self._lock:
            running = [j.id for j in self._jobs.values() if j.status == JOB_RUNNING]
            for job_id in running:
                self._set_job(job_id, status=JOB_QUEUED)
            return len(running)

    def requeue_job(self, job_id: int, now: datetime | None = None) -> Job | None:
        now = (now or utcnow()).astimezone(UTC)
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status not in (JOB_QUEUED, JOB_FAILED):
                return None
            other = next(
                (
                    j
                    for j in self._jobs.values()
                    if j.ticket_id == job.ticket_id and j.status == JOB_QUEUED and j.id != job_id
                ),
                None,
            )
            if other is not None:
                del self._jobs[job_id]
                return other
            return self._set_job(job_id, status=JOB_QUEUED, attempts=0, not_before=now)

    def drop_job(self, job_id: int) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status not in (JOB_QUEUED, JOB_FAILED):
                return False
            del self._jobs[job_id]
            return True

    def jobs(self, status: str | None = None) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if status is None or j.status == status]

    def next_job_due(self) -> datetime | None:
        with self._lock:
            times = [j.not_before for j in self._jobs.values() if j.status == JOB_QUEUED]
            return min(times) if times else None

    def _set_job(self, job_id: int, **changes: Any) -> Job:
        with self._lock:
            job = replace(self._jobs[job_id], **changes)
            self._jobs[job_id] = job
            return job

    # ---- ticket threads -----------------------------------------------------------------------

    def ticket_thread(self, ticket_id: int) -> tuple[str, str] | None:
        with self._lock:
            return self._threads.get(ticket_id)

    def save_ticket_thread(self, ticket_id: int, channel: str, ts: str) -> None:
        with self._lock:
            self._threads[ticket_id] = (channel, ts)
            self._pending_threads.pop(ticket_id, None)

    def mark_thread_pending(self, ticket_id: int, channel: str, since: datetime) -> None:
        with self._lock:
            self._threads.pop(ticket_id, None)
            self._pending_threads[ticket_id] = (channel, since)

    def thread_pending(self, ticket_id: int) -> tuple[str, datetime] | None:
        with self._lock:
            return self._pending_threads.get(ticket_id)

    # ---- rounds and drafts --------------------------------------------------------------------

    def round_for(self, ticket_id: int, comment_id: int) -> RoundRecord | None:
        with self._lock:
            return next(
                (r for r in self._rounds.values() if r.ticket_id == ticket_id and r.comment_id == comment_id),
                None,
            )

    def create_round(
        self,
        ticket_id: int,
        comment_id: int,
        assignments: Sequence[tuple[str, str]],
        language: str | None = None,
    ) -> RoundRecord:
        with self._lock:
            number = sum(1 for r in self._rounds.values() if r.ticket_id == ticket_id) + 1
            round_ = RoundRecord(
                round_id_for(ticket_id, number),
                ticket_id,
                comment_id,
                number,
                ROUND_GENERATING,
                language=language,
            )
            self._rounds[round_.id] = round_
            for label, model in assignments:
                draft_id = draft_id_for(ticket_id, number, label)
                self._drafts[draft_id] = DraftRecord(
                    draft_id,
                    ticket_id,
                    round_.id,
                    number,
                    label,
                    model,
                    None,
                    None,
                    None,
                    (),
                    None,
                    comment_id=comment_id,
                    language=language,
                )
            return round_

    def mark_round_posted(self, round_id: str) -> None:
        with self._lock:
            if round_id in self._rounds:
                self._rounds[round_id] = replace(self._rounds[round_id], status=ROUND_POSTED)

    def mark_notice_posted(self, round_id: str, notice: str) -> None:
        with self._lock:
            round_ = self._rounds.get(round_id)
            if round_ is not None and notice not in round_.notices_posted:
                self._rounds[round_id] = replace(round_, notices_posted=(*round_.notices_posted, notice))

    def drafts_for_round(self, round_id: str) -> list[DraftRecord]:
        with self._lock:
            return sorted((d for d in self._drafts.values() if d.round_id == round_id), key=lambda d: d.label)

    def drafts_for_ticket(self, ticket_id: int) -> list[DraftRecord]:
        with self._lock:
            drafts = [d for d in self._drafts.values() if d.ticket_id == ticket_id]
            return sorted(drafts, key=lambda d: (d.round_number, d.label))

    def save_generated(
        self,
        draft_id: str,
        text: str | None,
        error: str | None,
        model_version: str | None = None,
        prompt: str | None = None,
    ) -> None:
        self._set_draft(draft_id, text=text, error=error, model_version=model_version, prompt=prompt)

    def add_draft_message(self, draft_id: str, channel: str, ts: str) -> None:
        with self._lock:
            if draft_id not in self._drafts:
                raise KeyError(draft_id)
            self._set_draft(draft_id, channel=channel, slack_ts=(*self._drafts[draft_id].slack_ts, ts))

    def draft(self, draft_id: str) -> DraftRecord | None:
        with self._lock:
            return self._drafts.get(draft_id)

    def draft_by_message(self, channel: str, ts: str) -> DraftRecord | None:
        with self._lock:
            return next((d for d in self._drafts.values() if d.channel == channel and ts in d.slack_ts), None)

    def mark_sent(self, draft_id: str, user: str) -> None:
        self._set_draft(draft_id, sent_to_zendesk_by=user)

    # ---- sends into Zendesk, and the requester's contact ----------------------------------------

    def record_send(self, send: SendRecord) -> None:
        with self._lock:
            if send.draft_id not in self._drafts:
                raise KeyError(send.draft_id)
            self._sends[send.id] = send

    def sends_for_round(self, round_id: str) -> list[SendRecord]:
        with self._lock:
            found = [s for s in self._sends.values() if s.round_id == round_id]
        return sorted(found, key=lambda s: (s.started_at, s.id))

    def pending_sends(self) -> list[SendRecord]:
        with self._lock:
            found = [s for s in self._sends.values() if s.state == SEND_PENDING]
        return sorted(found, key=lambda s: (s.started_at, s.id))

    def save_ticket_contact(self, ticket_id: int, name: str, email: str) -> None:
        with self._lock:
            self._contacts[ticket_id] = (name, email)

    def ticket_contact(self, ticket_id: int) -> tuple[str, str] | None:
        with self._lock:
            return self._contacts.get(ticket_id)

    def drafts_posted_since(self, since: datetime) -> list[DraftRecord]:
        with self._lock:
            found = [d for d in self._drafts.values() if d.slack_ts and ts_time(d.slack_ts[0]) >= since]
        return sorted(found, key=lambda d: (d.ticket_id, d.round_number, d.label))

    def _set_draft(self, draft_id: str, **changes: Any) -> None:
        with self._lock:
            if draft_id in self._drafts:  # an unknown draft changes nothing, as in the file store
                self._drafts[draft_id] = replace(self._drafts[draft_id], **changes)

    # ---- votes --------------------------------------------------------------------------------

    def record_vote(self, vote: Vote) -> None:
        with self._lock:
            self._votes[(vote.draft_id, vote.rater)] = replace(vote, voted_at=vote.voted_at.astimezone(UTC))

    def remove_reaction_vote(self, draft_id: str, rater: str, score: int) -> bool:
        with self._lock:
            vote = self._votes.get((draft_id, rater))
            if vote is None or vote.source != "reaction" or vote.score != score:
                return False
            del self._votes[(draft_id, rater)]
            return True

    def rated_count(self, draft_id: str) -> int:
        with self._lock:
            return sum(1 for d, _ in self._votes if d == draft_id)

    def set_vote_reason(self, draft_id: str, rater: str, reason: str, note: str | None = None) -> bool:
        with self._lock:
            vote = self._votes.get((draft_id, rater))
            if vote is None or vote.score not in NEGATIVE_SCORES:
                return False
            self._votes[(draft_id, rater)] = replace(vote, reason=reason, reason_note=note)
            return True

    def record_outcomes(self, outcomes: Sequence[DraftOutcome]) -> None:
        with self._lock:
            for outcome in outcomes:
                self._outcomes.setdefault(outcome.draft_id, outcome)

    def outcome(self, draft_id: str) -> DraftOutcome | None:
        with self._lock:
            return self._outcomes.get(draft_id)

    def outcomes(self, since: datetime | None = None, until: datetime | None = None) -> list[DraftOutcome]:
        with self._lock:
            found = [
                o
                for o in self._outcomes.values()
                if (since is None or o.replied_at >= since) and (until is None or o.replied_at < until)
            ]
        return sorted(found, key=lambda o: (o.replied_at, o.draft_id))

    def votes(self, since: datetime | None = None, until: datetime | None = None) -> list[Vote]:
        with self._lock:
            picked = [
                v
                for v in self._votes.values()
                if (since is None or v.voted_at >= since) and (until is None or v.voted_at < until)
            ]
        return sorted(picked, key=lambda v: (v.voted_at, v.draft_id, v.rater))

    # ---- small state --------------------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return json.loads(self._meta[key]) if key in self._meta else default

    def set_meta(self, key: str, value: Any) -> None:
        """Kept as JSON, as the file store keeps it: a value that is not JSON fails here too."""
        with self._lock:
            self._meta[key] = json.dumps(value)

"""The TinyDB store: the ``core.ports.Store`` of `draftdesk run`, kept in one JSON file.

Every mutation is a single atomic file replacement (see `atomic_storage`), and every multi-step
workflow (post parent, save drafts, post each draft) records each step, so a process killed at
any point resumes where it stopped and never posts twice what it already recorded.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

from bot.store.atomic_storage import AtomicJSONStorage
from bot.store.documents import (
    blank_draft,
    iso,
    job_from_doc,
    new_round_doc,
    next_due,
    outcome_doc,
    outcome_from_doc,
    outcomes_from_docs,
    parse_iso,
    pending_thread,
    round_from_doc,
    send_from_doc,
    send_to_doc,
    ts_time,
    votes_from_docs,
)
from bot.store.votes_io import vote_row
from core.domain import (
    JOB_DONE,
    JOB_FAILED,
    JOB_QUEUED,
    JOB_RUNNING,
    NEGATIVE_SCORES,
    ROUND_POSTED,
    SEND_PENDING,
    DraftOutcome,
    DraftRecord,
    Job,
    RoundRecord,
    SendRecord,
    Vote,
    draft_id_for,
    utcnow,
)


class TinyDBStore:
    """Thread-safe store in one TinyDB file. Listeners, worker and poller share one instance.

    ``read_only`` opens the file for reading (reports, exports): it is never written.
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = TinyDB(path, storage=AtomicJSONStorage, read_only=read_only)
        self._db.storage.read()  # a damaged file is reported now, not at the first vote
        self._jobs = self._db.table("jobs")
        self._threads = self._db.table("ticket_threads")
        self._rounds = self._db.table("rounds")
        self._drafts = self._db.table("drafts")
        self._votes = self._db.table("votes")
        self._outcomes = self._db.table("outcomes")
        self._meta = self._db.table("meta")
        self._sends = self._db.table("sends")
        self._contacts = self._db.table("contacts")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- jobs: a durable queue with one queued job per ticket ---------------------------------

    def enqueue(self, ticket_id: int, source: str, now: datetime | None = None) -> bool:
        """Queue a ticket unless a job for it is already waiting. Returns True if a job was added.

        A job that is already *running* does not absorb the new one: it may have read the ticket
        before the change that triggered this call.
        """
        now = now or utcnow()
        q = Query()
        with self._lock:
            if self._jobs.contains((q.ticket_id == ticket_id) & (q.status == JOB_QUEUED)):
                return False
            self._jobs.insert(
                {
                    "ticket_id": ticket_id,
                    "source": source,
                    "status": JOB_QUEUED,
                    "attempts": 0,
                    "created_at": iso(now),
                    "not_before": iso(now),
                    "last_error": None,
                }
            )
            return True

    def claim_next_job(self, now: datetime | None = None) -> Job | None:
        now = now or utcnow()
        with self._lock:
            due = [
                doc
                for doc in self._jobs.all()
                if doc["status"] == JOB_QUEUED and parse_iso(doc["not_before"]) <= now
            ]
            if not due:
                return None
            doc = min(due, key=lambda d: (d["not_before"], d.doc_id))
            self._jobs.update({"status": JOB_RUNNING, "attempts": doc["attempts"] + 1}, doc_ids=[doc.doc_id])
            return job_from_doc(self._jobs.get(doc_id=doc.doc_id))

    def finish_job(self, job_id: int) -> None:
        with self._lock:
            self._jobs.update({"status": JOB_DONE, "last_error": None}, doc_ids=[job_id])

    def retry_job(self, job_id: int, error: str, not_before: datetime) -> None:
        with self._lock:
            self._jobs.update(
                {"status": JOB_QUEUED, "last_error": error, "not_before": iso(not_before)}, doc_ids=[job_id]
            )

    def fail_job(self, job_id: int, error: str) -> None:
        with self._lock:
            self._jobs.update({"status": JOB_FAILED, "last_error": error}, doc_ids=[job_id])

    def requeue_interrupted_jobs(self) -> int:
        """At start-up: jobs left running by a killed process go back to the queue."""
        with self._lock:
            ids = [doc.doc_id for doc in self._jobs.all() if doc["status"] == JOB_RUNNING]
            if ids:
                self._jobs.update({"status": JOB_QUEUED}, doc_ids=ids)
            return len(ids)

    def requeue_job(self, job_id: int, now: datetime | None = None) -> Job | None:
        now = now or utcnow()
        q = Query()
        with self._lock:
            doc = self._jobs.get(doc_id=job_id)
            if doc is None or doc["status"] not in (JOB_QUEUED, JOB_FAILED):
                return None
            others = self._jobs.search((q.ticket_id == doc["ticket_id"]) & (q.status == JOB_QUEUED))
            other = next((d for d in others if d.doc_id != job_id), None)
            if other is not None:
                self._jobs.remove(doc_ids=[job_id])
                return job_from_doc(other)
            self._jobs.update({"status": JOB_QUEUED, "attempts": 0, "not_before": iso(now)}, doc_ids=[job_id])
            return job_from_doc(self._jobs.get(doc_id=job_id))

    def drop_job(self, job_id: int) -> bool:
        with self._lock:
            doc = self._jobs.get(doc_id=job_id)
            if doc is None or doc["status"] not in (JOB_QUEUED, JOB_FAILED):
                return False
            self._jobs.remove(doc_ids=[job_id])
            return True

    def jobs(self, status: str | None = None) -> list[Job]:
        with self._lock:
            docs = self._jobs.all() if status is None else self._jobs.search(Query().status == status)
            return [job_from_doc(doc) for doc in docs]

    def next_job_due(self) -> datetime | None:
        with self._lock:
            return next_due(self._jobs.all(), JOB_QUEUED)

    # ---- ticket threads ---------------------------------------------------------------------

    def ticket_thread(self, ticket_id: int) -> tuple[str, str] | None:
        with self._lock:
            doc = self._threads.get(Query().ticket_id == ticket_id)
            return (doc["channel"], doc["ts"]) if doc and doc.get("ts") else None

    def save_ticket_thread(self, ticket_id: int, channel: str, ts: str) -> None:
        with self._lock:
            self._threads.upsert(
                {"ticket_id": ticket_id, "channel": channel, "ts": ts, "created_at": iso(utcnow())},
                Query().ticket_id == ticket_id,
            )

    def mark_thread_pending(self, ticket_id: int, channel: str, since: datetime) -> None:
        with self._lock:
            self._threads.upsert(
                {"ticket_id": ticket_id, "channel": channel, "ts": None, "pending_since": iso(since)},
                Query().ticket_id == ticket_id,
            )

    def thread_pending(self, ticket_id: int) -> tuple[str, datetime] | None:
        with self._lock:
            doc = self._threads.get(Query().ticket_id == ticket_id)
            return pending_thread(doc)

    # ---- rounds and drafts ------------------------------------------------------------------

    def round_for(self, ticket_id: int, comment_id: int) -> RoundRecord | None:
        q = Query()
        with self._lock:
            doc = self._rounds.get((q.ticket_id == ticket_id) & (q.comment_id == comment_id))
            return round_from_doc(doc) if doc else None

    def create_round(
        self, ticket_id: int, comment_id: int, assignments: Sequence[tuple[str, str]]
    ) -> RoundRecord:
        """Record a new round with its blind label → model assignment, before any generation: the
        round and its drafts in one write of the file, so a kill never leaves a round without them."""
        with self._lock:
            number = self._rounds.count(Query().ticket_id == ticket_id) + 1
            doc = new_round_doc(ticket_id, comment_id, number, utcnow())
            drafts = [
                {
                    "id": draft_id_for(ticket_id, number, label),
                    "ticket_id": ticket_id,
                    "round_id": doc["id"],
                    "round_number": number,
                    "label": label,
                    **blank_draft(model),
                    "comment_id": comment_id,
                }
                for label, model in assignments
            ]
            data = self._db.storage.read() or {}
            _append(data.setdefault("rounds", {}), [doc])
            _append(data.setdefault("drafts", {}), drafts)
            self._db.storage.write(data)
            for table in (self._rounds, self._drafts):
                table.clear_cache()
                table._next_id = None  # TinyDB's id counter: recomputed from the file on the next insert
            return round_from_doc(doc)

    def mark_round_posted(self, round_id: str) -> None:
        with self._lock:
            self._rounds.update({"status": ROUND_POSTED}, Query().id == round_id)

    def mark_notice_posted(self, round_id: str, notice: str) -> None:
        with self._lock:
            doc = self._rounds.get(Query().id == round_id)
            posted = list(doc["notices_posted"]) if doc else []
            if notice not in posted:
                self._rounds.update({"notices_posted": [*posted, notice]}, Query().id == round_id)

    def drafts_for_round(self, round_id: str) -> list[DraftRecord]:
        with self._lock:
            docs = sorted(self._drafts.search(Query().round_id == round_id), key=lambda d: d["label"])
            return [self._draft(doc) for doc in docs]

    def drafts_for_ticket(self, ticket_id: int) -> list[DraftRecord]:
        with self._lock:
            docs = self._drafts.search(Query().ticket_id == ticket_id)
            return [self._draft(doc) for doc in sorted(docs, key=lambda d: (d["round_number"], d["label"]))]

    def save_generated(
        self,
        draft_id: str,
        text: str | None,
        error: str | None,
        model_version: str | None = None,
        prompt: str | None = None,
    ) -> None:
        with self._lock:
            self._drafts.update(
                {"text": text, "error": error, "model_version": model_version, "prompt": prompt},
                Query().id == draft_id,
            )

    def add_draft_message(self, draft_id: str, channel: str, ts: str) -> None:
        with self._lock:
            doc = self._drafts.get(Query().id == draft_id)
            if doc is None:
                raise KeyError(draft_id)
            self._drafts.update(
                {"channel": channel, "slack_ts": [*doc["slack_ts"], ts]}, Query().id == draft_id
            )

    def draft(self, draft_id: str) -> DraftRecord | None:
        with self._lock:
            doc = self._drafts.get(Query().id == draft_id)
            return self._draft(doc) if doc else None

    def draft_by_message(self, channel: str, ts: str) -> DraftRecord | None:
        """The draft whose (any) Slack message has this ts: reactions may land on any part."""
        with self._lock:
            for doc in self._drafts.search(Query().channel == channel):
                if ts in doc["slack_ts"]:
                    return self._draft(doc)
            return None

    def mark_sent(self, draft_id: str, user: str) -> None:
        with self._lock:
            self._drafts.update({"sent_to_zendesk_by": user}, Query().id == draft_id)

    def drafts_posted_since(self, since: datetime) -> list[DraftRecord]:
        with self._lock:
            docs = [d for d in self._drafts.all() if d["slack_ts"] and ts_time(d["slack_ts"][0]) >= since]
            drafts = [self._draft(doc) for doc in docs]
        return sorted(drafts, key=lambda d: (d.ticket_id, d.round_number, d.label))

    # ---- sends into Zendesk, and the requester's contact ---------------------------------------

    def record_send(self, send: SendRecord) -> None:
        with self._lock:
            if self.draft(send.draft_id) is None:
                raise KeyError(send.draft_id)
            self._sends.upsert(send_to_doc(send), Query().id == send.id)

    def sends_for_round(self, round_id: str) -> list[SendRecord]:
        with self._lock:
            docs = self._sends.search(Query().round_id == round_id)
            return sorted((send_from_doc(d) for d in docs), key=lambda s: (s.started_at, s.id))

    def pending_sends(self) -> list[SendRecord]:
        with self._lock:
            docs = self._sends.search(Query().state == SEND_PENDING)
            return sorted((send_from_doc(d) for d in docs), key=lambda s: (s.started_at, s.id))

    def save_ticket_contact(self, ticket_id: int, name: str, email: str) -> None:
        with self._lock:
            self._contacts.upsert(
                {"ticket_id": ticket_id, "name": name, "email": email}, Query().ticket_id == ticket_id
            )

    def ticket_contact(self, ticket_id: int) -> tuple[str, str] | None:
        with self._lock:
            doc = self._contacts.get(Query().ticket_id == ticket_id)
            return (doc["name"], doc["email"]) if doc else None

    @staticmethod
    def _draft(doc: Any) -> DraftRecord:
        return DraftRecord(
            id=doc["id"],
            ticket_id=doc["ticket_id"],
            round_id=doc["round_id"],
            round_number=doc["round_number"],
            label=doc["label"],
            model=doc["model"],
            text=doc["text"],
            error=doc["error"],
            channel=doc["channel"],
            slack_ts=tuple(doc["slack_ts"]),
            sent_to_zendesk_by=doc.get("sent_to_zendesk_by"),
            model_version=doc.get("model_version"),
            prompt=doc.get("prompt"),
            comment_id=doc.get("comment_id"),
        )

    # ---- votes: one per (draft, rater), the latest wins ---------------------------------------

    def record_vote(self, vote: Vote) -> None:
        q = Query()
        with self._lock:
            self._votes.upsert(
                vote_row(vote),
                (q.draft_id == vote.draft_id) & (q.rater == vote.rater),
            )

    def remove_reaction_vote(self, draft_id: str, rater: str, score: int) -> bool:
        """Removing a reaction removes the vote only if that reaction is still the rater's vote."""
        q = Query()
        with self._lock:
            removed = self._votes.remove(
                (q.draft_id == draft_id) & (q.rater == rater) & (q.source == "reaction") & (q.score == score)
            )
            return bool(removed)

    def set_vote_reason(self, draft_id: str, rater: str, reason: str, note: str | None = None) -> bool:
        Vote(0, draft_id, "", rater, 1, "button", utcnow(), reason)  # a bad reason fails before any write
        q = Query()
        with self._lock:
            updated = self._votes.update(
                {"reason": reason, "reason_note": note},
                (q.draft_id == draft_id) & (q.rater == rater) & q.score.one_of(sorted(NEGATIVE_SCORES)),
            )
            return bool(updated)

    def rated_count(self, draft_id: str) -> int:
        with self._lock:
            return self._votes.count(Query().draft_id == draft_id)

    def record_outcomes(self, outcomes: Sequence[DraftOutcome]) -> None:
        with self._lock:
            for outcome in outcomes:
                if not self._outcomes.contains(Query().draft_id == outcome.draft_id):
                    self._outcomes.insert(outcome_doc(outcome))

    def outcome(self, draft_id: str) -> DraftOutcome | None:
        with self._lock:
            doc = self._outcomes.get(Query().draft_id == draft_id)
        return outcome_from_doc(doc) if doc else None

    def outcomes(self, since: datetime | None = None, until: datetime | None = None) -> list[DraftOutcome]:
        with self._lock:
            docs = list(self._outcomes.all())
        return outcomes_from_docs(docs, since, until)

    def votes(self, since: datetime | None = None, until: datetime | None = None) -> list[Vote]:
        """Votes with since <= voted_at < until, oldest first."""
        with self._lock:
            docs = list(self._votes.all())
        result = votes_from_docs(docs, since, until)
        return sorted(result, key=lambda v: (v.voted_at, v.draft_id, v.rater))

    # ---- small state: poll cursor, digest bookkeeping ----------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            doc = self._meta.get(Query().key == key)
            # a copy: TinyDB hands out the cached document, which a caller must not change
            return copy.deepcopy(doc["value"]) if doc else default

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self._meta.upsert({"key": key, "value": copy.deepcopy(value)}, Query().key == key)


def _append(table: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    """Add documents to a TinyDB table's raw data under the next free ids."""
    next_id = max((int(k) for k in table), default=0) + 1
    for offset, doc in enumerate(docs):
        table[str(next_id + offset)] = doc

"""The PostgreSQL store: ``core.ports.Store`` in a database that several `draftdesk run` replicas share.

Every call is one short transaction on a pooled connection. What makes replicas safe:

* a job is claimed with ``FOR UPDATE SKIP LOCKED`` and held under a *lease* that a thread of the
  claiming process renews; a replica killed with SIGKILL stops renewing, and once the lease has
  passed another replica's ``claim_next_job`` takes the job over (its attempt counts);
* one queued and one running job per ticket (unique partial indexes): a webhook delivered to two
  replicas queues one job, and two replicas never work on one ticket at once, so the worker's
  one-thread-per-ticket and one-message-per-draft steps stay as single-process as they were;
* ``exclusive(name)``: a try-lock (``pg_try_advisory_lock``) for work only one replica should do
  at a time (the weekly digest, polling Zendesk).

Times go in and come out in UTC (the session's time zone is set to UTC).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from bot.store.documents import ts_time
from bot.store.pg import rows
from bot.store.pg.schema import migrate
from core.db_url import masked
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

log = logging.getLogger(__name__)

EXCLUSIVE_NAMESPACE = 0x6464  # the first key of draftdesk's advisory locks ("dd")
C = 'COLLATE "C"'  # ids sort as Python sorts them, whatever the database's locale
_DRAFT_COLUMNS_OF_D = ", ".join("d." + column.strip() for column in rows.DRAFT_COLUMNS.split(","))


class DatabaseUnavailable(ConnectionError):
    """The database could not be reached or used; the message names it with its password masked."""


def replica_name() -> str:
    """This process among the replicas: host, pid and a random part (a restarted process is new)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class PostgresStore:
    """Thread-safe (a connection pool); ``close`` stops the lease renewal, hands back the replica's
    jobs and closes the pool. ``migrate_schema=False`` opens a database whose schema is kept by others
    (a read-only role: PostgreSQL's own permissions are the place for one)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 8,
        lease: timedelta = timedelta(seconds=60),
        replica: str | None = None,
        migrate_schema: bool = True,
        connect_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.replica = replica or replica_name()
        self.lease = lease
        self._renewing: threading.Thread | None = None
        self._stop = threading.Event()
        settings: dict[str, Any] = {"row_factory": dict_row, "options": _with_utc(url)}
        try:  # one connection first: its error says why (the pool's would only say it timed out)
            with psycopg.connect(url, connect_timeout=max(1, round(connect_timeout)), **settings) as conn:
                if migrate_schema:
                    migrate(conn)
        except psycopg.Error as exc:
            raise DatabaseUnavailable(
                f"cannot use the PostgreSQL database {masked(url)}: {_reason(exc)}"
            ) from exc
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(4, pool_size),  # a lock held while posting needs one besides the writes
            kwargs=settings,
            open=False,
            name="draftdesk",
            check=ConnectionPool.check_connection,  # a connection lost in a failover is replaced
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise DatabaseUnavailable(f"cannot use the PostgreSQL database {masked(url)}: {exc}") from exc

    def __repr__(self) -> str:
        return f"PostgresStore({masked(self.url)!r}, replica={self.replica!r})"

    def close(self) -> None:
        """Stops renewing, hands back the jobs this replica still holds (a replica stopped for an
        upgrade: another takes them at once, not after the lease), and closes the pool. Closing a
        closed store does nothing."""
        if self._pool.closed:
            return
        self._stop.set()
        if self._renewing is not None:
            self._renewing.join(timeout=5)
            try:
                released = self.requeue_interrupted_jobs()
            except (psycopg.Error, PoolTimeout) as exc:  # the database is away: the leases run out
                log.warning("could not hand back this replica's jobs: %s", _reason(exc))
            else:
                if released:
                    log.info("handed back %s job(s) this replica held", released)
        self._pool.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (rows as dicts, UTC), for bulk work such as `draftdesk store copy`."""
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Any]]:
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    def _one(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        with self._tx() as conn:
            return conn.execute(sql, params).fetchone()  # type: ignore[arg-type, return-value]

    def _all(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        with self._tx() as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type, return-value]

    def _run(self, sql: str, params: Any = None) -> int:
        with self._tx() as conn:
            return conn.execute(sql, params).rowcount  # type: ignore[arg-type]

    def check(self) -> tuple[bool, str]:
        """GET /healthz's database part: reachable, and how many jobs this replica holds."""
        try:
            row = self._one(
                "SELECT count(*) AS held FROM jobs WHERE status = 'running' AND claimed_by = %s",
                (self.replica,),
            )
        except (psycopg.Error, PoolTimeout) as exc:
            return False, f"{masked(self.url)}: {_reason(exc)}"
        return True, f"reachable; replica {self.replica} holds {row['held'] if row else 0} job(s)"

    # ---- coordination between replicas ---------------------------------------------------------

    @contextmanager
    def exclusive(self, name: str, wait: float = 0.0) -> Iterator[bool]:
        """Yields True to the one process (of every replica) that holds ``name`` now, False to the
        others, who should skip the work (it is being done) or try later. ``wait``: seconds to wait
        for a holder to finish first. Held until the block ends, on a connection of its own."""
        key = zlib.crc32(name.encode()) - 2**31  # a stable int4, unlike hash()
        with self._pool.connection() as conn:
            conn.autocommit = True
            try:
                held = self._take(conn, key, wait)
                try:
                    yield held
                finally:
                    if held:
                        conn.execute("SELECT pg_advisory_unlock(%s, %s)", (EXCLUSIVE_NAMESPACE, key))
            finally:
                conn.autocommit = False

    @staticmethod
    def _take(conn: psycopg.Connection[Any], key: int, wait: float) -> bool:
        if wait <= 0:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s) AS held", (EXCLUSIVE_NAMESPACE, key)
            ).fetchone()
            return bool(row and row["held"])  # type: ignore[call-overload]
        conn.execute(f"SET lock_timeout = {max(1, int(wait * 1000))}")
        try:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (EXCLUSIVE_NAMESPACE, key))
            return True
        except errors.LockNotAvailable:
            return False
        finally:
            conn.execute("RESET lock_timeout")

    def _renew_leases(self) -> None:
        """While the process lives, its running jobs stay claimed (every third of the lease)."""
        while not self._stop.wait(self.lease.total_seconds() / 3):
            try:
                self._run(
                    "UPDATE jobs SET lease_until = clock_timestamp() + %s"
                    " WHERE status = 'running' AND claimed_by = %s",
                    (self.lease, self.replica),
                )
            except (psycopg.Error, PoolTimeout) as exc:  # the database is away: the next turn tries again
                log.warning("could not renew this replica's job leases: %s", _reason(exc))

    def _start_renewing(self) -> None:
        if self._renewing is None and not self._stop.is_set():
            self._renewing = threading.Thread(target=self._renew_leases, name="job-leases", daemon=True)
            self._renewing.start()

    # ---- jobs ---------------------------------------------------------------------------------

    def enqueue(self, ticket_id: int, source: str, now: datetime | None = None) -> bool:
        now = now or utcnow()
        row = self._one(
            "INSERT INTO jobs (ticket_id, source, status, created_at, not_before)"
            " VALUES (%s, %s, 'queued', %s, %s)"
            " ON CONFLICT (ticket_id) WHERE status = 'queued' DO NOTHING RETURNING id",
            (ticket_id, source, now, now),
        )
        return row is not None

    def claim_next_job(self, now: datetime | None = None) -> Job | None:
        """A job whose claimer's lease has passed first (taken over), else the queued job due first
        whose ticket no replica is working on."""
        now = now or utcnow()
        claim = (
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, claimed_by = %(me)s,"
            " lease_until = clock_timestamp() + %(lease)s WHERE id = (SELECT id FROM jobs j WHERE {where}"
            " ORDER BY {order} FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING " + rows.JOB_COLUMNS
        )
        expired = claim.format(
            where="j.status = 'running' AND j.lease_until < clock_timestamp()", order="j.lease_until"
        )
        queued = claim.format(
            # NOT IN: one hashed pass over the (few) running jobs, whatever the statistics say
            where="j.status = 'queued' AND j.not_before <= %(now)s AND j.ticket_id NOT IN"
            " (SELECT r.ticket_id FROM jobs r WHERE r.status = 'running')",
            order="j.not_before, j.id",
        )
        params = {"me": self.replica, "lease": self.lease, "now": now}
        try:
            with self._tx() as conn:
                row = conn.execute(expired, params).fetchone()  # type: ignore[arg-type]
                if row is not None:
                    log.warning(
                        "took over job %s (ticket %s): its claimer stopped renewing the lease",
                        row["id"],  # type: ignore[call-overload]
                        row["ticket_id"],  # type: ignore[call-overload]
                    )
                else:
                    row = conn.execute(queued, params).fetchone()  # type: ignore[arg-type]
        except errors.UniqueViolation:  # another replica claimed this ticket's other job just now
            return None
        if row is None:
            return None
        self._start_renewing()
        return rows.job(row)  # type: ignore[arg-type]

    def _end_claim(self, job_id: int, status: str, error: str | None, not_before: datetime | None) -> None:
        """finish, retry or fail: only while this replica still holds the job (or no one does)."""
        with self._tx() as conn:
            current = conn.execute(
                "SELECT ticket_id, status, claimed_by FROM jobs WHERE id = %s FOR UPDATE", (job_id,)
            ).fetchone()
            if current is None:
                return
            if current["status"] == JOB_RUNNING and current["claimed_by"] != self.replica:  # type: ignore[call-overload]
                log.warning(
                    "job %s is no longer this replica's (its lease passed): left to its new claimer", job_id
                )
                return
            if status == JOB_QUEUED:
                other = conn.execute(
                    "SELECT id FROM jobs WHERE ticket_id = %s AND status = 'queued' AND id <> %s",
                    (current["ticket_id"], job_id),  # type: ignore[call-overload]
                ).fetchone()
                if other is not None:  # the ticket changed meanwhile: its queued job covers this one
                    conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,))
                    return
            conn.execute(
                "UPDATE jobs SET status = %s, last_error = %s, not_before = coalesce(%s, not_before),"
                " claimed_by = NULL, lease_until = NULL,"
                " finished_at = CASE WHEN %s = 'done' THEN clock_timestamp() END WHERE id = %s",
                (status, error, not_before, status, job_id),
            )

    def finish_job(self, job_id: int) -> None:
        self._end_claim(job_id, JOB_DONE, None, None)

    def retry_job(self, job_id: int, error: str, not_before: datetime) -> None:
        self._end_claim(job_id, JOB_QUEUED, error, not_before)

    def fail_job(self, job_id: int, error: str) -> None:
        self._end_claim(job_id, JOB_FAILED, error, None)

    def requeue_interrupted_jobs(self) -> int:
        """Jobs this replica holds, and jobs whose claimer's lease has passed: back to the queue
        (into the ticket's queued job when it has one). A live replica's jobs are left alone."""
        mine = "status = 'running' AND (claimed_by = %(me)s OR lease_until < clock_timestamp())"
        with self._tx() as conn:
            absorbed = conn.execute(
                f"DELETE FROM jobs r WHERE {mine} AND EXISTS"
                " (SELECT 1 FROM jobs q WHERE q.ticket_id = r.ticket_id AND q.status = 'queued')",
                {"me": self.replica},
            ).rowcount
            requeued = conn.execute(
                f"UPDATE jobs SET status = 'queued', claimed_by = NULL, lease_until = NULL WHERE {mine}",
                {"me": self.replica},
            ).rowcount
        return absorbed + requeued

    def requeue_job(self, job_id: int, now: datetime | None = None) -> Job | None:
        now = now or utcnow()
        with self._tx() as conn:
            job = conn.execute(
                f"SELECT {rows.JOB_COLUMNS} FROM jobs WHERE id = %s FOR UPDATE", (job_id,)
            ).fetchone()
            if job is None or job["status"] not in (JOB_QUEUED, JOB_FAILED):  # type: ignore[call-overload]
                return None
            other = conn.execute(
                f"SELECT {rows.JOB_COLUMNS} FROM jobs"
                " WHERE ticket_id = %s AND status = 'queued' AND id <> %s",
                (job["ticket_id"], job_id),  # type: ignore[call-overload]
            ).fetchone()
            if other is not None:
                conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,))
                return rows.job(other)  # type: ignore[arg-type]
            row = conn.execute(
                "UPDATE jobs SET status = 'queued', attempts = 0, not_before = %s WHERE id = %s"
                f" RETURNING {rows.JOB_COLUMNS}",
                (now, job_id),
            ).fetchone()
        return rows.job(row)  # type: ignore[arg-type]

    def drop_job(self, job_id: int) -> bool:
        return bool(self._run("DELETE FROM jobs WHERE id = %s AND status IN ('queued', 'failed')", (job_id,)))

    def jobs(self, status: str | None = None) -> list[Job]:
        if status is None:
            found = self._all(f"SELECT {rows.JOB_COLUMNS} FROM jobs ORDER BY id")
        else:
            found = self._all(f"SELECT {rows.JOB_COLUMNS} FROM jobs WHERE status = %s ORDER BY id", (status,))
        return [rows.job(row) for row in found]

    def next_job_due(self) -> datetime | None:
        """The first queued job's time, or when another replica's lease passes (a job to take over)."""
        row = self._one(
            "SELECT least((SELECT min(not_before) FROM jobs WHERE status = 'queued'),"
            " (SELECT min(lease_until) FROM jobs WHERE status = 'running' AND claimed_by <> %s)) AS due",
            (self.replica,),
        )
        return row["due"] if row else None

    def job_claims(self) -> list[tuple[int, str, datetime]]:
        """(job id, replica, lease end) of every running job: `draftdesk jobs list`, tests."""
        found = self._all("SELECT id, claimed_by, lease_until FROM jobs WHERE status = 'running' ORDER BY id")
        return [(r["id"], r["claimed_by"], r["lease_until"]) for r in found]

    # ---- ticket threads -----------------------------------------------------------------------

    def ticket_thread(self, ticket_id: int) -> tuple[str, str] | None:
        row = self._one(
            "SELECT channel, ts FROM ticket_threads WHERE ticket_id = %s AND ts IS NOT NULL", (ticket_id,)
        )
        return (row["channel"], row["ts"]) if row else None

    def save_ticket_thread(self, ticket_id: int, channel: str, ts: str) -> None:
        self._run(
            "INSERT INTO ticket_threads (ticket_id, channel, ts) VALUES (%s, %s, %s) ON CONFLICT (ticket_id)"
            " DO UPDATE SET channel = excluded.channel, ts = excluded.ts, pending_since = NULL",
            (ticket_id, channel, ts),
        )

    def mark_thread_pending(self, ticket_id: int, channel: str, since: datetime) -> None:
        self._run(
            "INSERT INTO ticket_threads (ticket_id, channel, ts, pending_since) VALUES (%s, %s, NULL, %s)"
            " ON CONFLICT (ticket_id) DO UPDATE SET channel = excluded.channel, ts = NULL,"
            " pending_since = excluded.pending_since",
            (ticket_id, channel, since),
        )

    def thread_pending(self, ticket_id: int) -> tuple[str, datetime] | None:
        row = self._one(
            "SELECT channel, pending_since FROM ticket_threads"
            " WHERE ticket_id = %s AND ts IS NULL AND pending_since IS NOT NULL",
            (ticket_id,),
        )
        return (row["channel"], row["pending_since"]) if row else None

    # ---- rounds and drafts --------------------------------------------------------------------

    def round_for(self, ticket_id: int, comment_id: int) -> RoundRecord | None:
        row = self._one(
            "SELECT * FROM rounds WHERE ticket_id = %s AND comment_id = %s ORDER BY number LIMIT 1",
            (ticket_id, comment_id),
        )
        return rows.round_(row) if row else None

    def create_round(
        self,
        ticket_id: int,
        comment_id: int,
        assignments: Sequence[tuple[str, str]],
        language: str | None = None,
    ) -> RoundRecord:
        """The round and its drafts in one transaction, numbered under a lock on the ticket."""
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (EXCLUSIVE_NAMESPACE + 1, ticket_id % 2**31))
            counted = conn.execute(
                "SELECT count(*) AS n FROM rounds WHERE ticket_id = %s", (ticket_id,)
            ).fetchone()
            number = int(counted["n"]) + 1  # type: ignore[index, call-overload]
            record = RoundRecord(
                round_id_for(ticket_id, number),
                ticket_id,
                comment_id,
                number,
                ROUND_GENERATING,
                language=language,
            )
            conn.execute(
                "INSERT INTO rounds (id, ticket_id, comment_id, number, status, language)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (record.id, ticket_id, comment_id, number, ROUND_GENERATING, language),
            )
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO drafts (id, round_id, ticket_id, round_number, label, model, comment_id,"
                    " language) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            draft_id_for(ticket_id, number, label),
                            record.id,
                            ticket_id,
                            number,
                            label,
                            model,
                            comment_id,
                            language,
                        )
                        for label, model in assignments
                    ],
                )
        return record

    def mark_round_posted(self, round_id: str) -> None:
        self._run("UPDATE rounds SET status = %s WHERE id = %s", (ROUND_POSTED, round_id))

    def mark_notice_posted(self, round_id: str, notice: str) -> None:
        self._run(
            "UPDATE rounds SET notices_posted = array_append(notices_posted, %s)"
            " WHERE id = %s AND NOT (%s = ANY (notices_posted))",
            (notice, round_id, notice),
        )

    def drafts_for_round(self, round_id: str) -> list[DraftRecord]:
        found = self._all(
            f"SELECT {rows.DRAFT_COLUMNS} FROM drafts WHERE round_id = %s ORDER BY label {C}", (round_id,)
        )
        return [rows.draft(row) for row in found]

    def drafts_for_ticket(self, ticket_id: int) -> list[DraftRecord]:
        found = self._all(
            f"SELECT {rows.DRAFT_COLUMNS} FROM drafts WHERE ticket_id = %s ORDER BY round_number, label {C}",
            (ticket_id,),
        )
        return [rows.draft(row) for row in found]

    def save_generated(
        self,
        draft_id: str,
        text: str | None,
        error: str | None,
        model_version: str | None = None,
        prompt: str | None = None,
    ) -> None:
        self._run(
            "UPDATE drafts SET text = %s, error = %s, model_version = %s, prompt = %s WHERE id = %s",
            (text, error, model_version, prompt, draft_id),
        )

    def add_draft_message(self, draft_id: str, channel: str, ts: str) -> None:
        with self._tx() as conn:
            updated = conn.execute(
                "UPDATE drafts SET channel = %s, slack_ts = array_append(slack_ts, %s),"
                " first_posted_at = coalesce(first_posted_at, %s) WHERE id = %s",
                (channel, ts, ts_time(ts), draft_id),
            ).rowcount
            if not updated:
                raise KeyError(draft_id)
            conn.execute(
                "INSERT INTO draft_messages (channel, ts, draft_id) VALUES (%s, %s, %s)"
                " ON CONFLICT (channel, ts) DO UPDATE SET draft_id = excluded.draft_id",
                (channel, ts, draft_id),
            )

    def draft(self, draft_id: str) -> DraftRecord | None:
        row = self._one(f"SELECT {rows.DRAFT_COLUMNS} FROM drafts WHERE id = %s", (draft_id,))
        return rows.draft(row) if row else None

    def draft_by_message(self, channel: str, ts: str) -> DraftRecord | None:
        row = self._one(
            f"SELECT {_DRAFT_COLUMNS_OF_D} FROM draft_messages m"
            " JOIN drafts d ON d.id = m.draft_id WHERE m.channel = %s AND m.ts = %s",
            (channel, ts),
        )
        return rows.draft(row) if row else None

    def mark_sent(self, draft_id: str, user: str) -> None:
        self._run("UPDATE drafts SET sent_to_zendesk_by = %s WHERE id = %s", (user, draft_id))

    def drafts_posted_since(self, since: datetime) -> list[DraftRecord]:
        found = self._all(
            f"SELECT {rows.DRAFT_COLUMNS} FROM drafts WHERE first_posted_at >= %s"
            f" ORDER BY ticket_id, round_number, label {C}",
            (since,),
        )
        return [rows.draft(row) for row in found]

    # ---- sends into Zendesk, and the requester's contact ----------------------------------------

    def record_send(self, send: SendRecord) -> None:
        columns = rows.SEND_COLUMNS
        names = [c.strip().strip('"') for c in columns.split(",")]
        values = ", ".join(f"%({name})s" for name in names)
        updates = ", ".join(f'"{name}" = excluded."{name}"' for name in names if name != "id")
        try:
            self._run(
                f"INSERT INTO sends ({columns}) VALUES ({values}) ON CONFLICT (id) DO UPDATE SET {updates}",
                rows.send_params(send),
            )
        except errors.ForeignKeyViolation:
            raise KeyError(send.draft_id) from None

    def sends_for_round(self, round_id: str) -> list[SendRecord]:
        found = self._all(
            f"SELECT {rows.SEND_COLUMNS} FROM sends WHERE round_id = %s ORDER BY started_at, id {C}",
            (round_id,),
        )
        return [rows.send(row) for row in found]

    def pending_sends(self) -> list[SendRecord]:
        found = self._all(
            f"SELECT {rows.SEND_COLUMNS} FROM sends WHERE state = %s ORDER BY started_at, id {C}",
            (SEND_PENDING,),
        )
        return [rows.send(row) for row in found]

    def save_ticket_contact(self, ticket_id: int, name: str, email: str) -> None:
        self._run(
            "INSERT INTO contacts (ticket_id, name, email) VALUES (%s, %s, %s) ON CONFLICT (ticket_id)"
            " DO UPDATE SET name = excluded.name, email = excluded.email",
            (ticket_id, name, email),
        )

    def ticket_contact(self, ticket_id: int) -> tuple[str, str] | None:
        row = self._one("SELECT name, email FROM contacts WHERE ticket_id = %s", (ticket_id,))
        return (row["name"], row["email"]) if row else None

    # ---- votes and outcomes -------------------------------------------------------------------

    def record_vote(self, vote: Vote) -> None:
        names = [c.strip() for c in rows.VOTE_COLUMNS.split(",")]
        values = ", ".join(f"%({name})s" for name in names)
        updates = ", ".join(
            f"{name} = excluded.{name}" for name in names if name not in ("draft_id", "rater")
        )
        self._run(
            f"INSERT INTO votes ({rows.VOTE_COLUMNS}) VALUES ({values})"
            f" ON CONFLICT (draft_id, rater) DO UPDATE SET {updates}",
            rows.vote_params(vote),
        )

    def remove_reaction_vote(self, draft_id: str, rater: str, score: int) -> bool:
        return bool(
            self._run(
                "DELETE FROM votes WHERE draft_id = %s AND rater = %s AND source = 'reaction' AND score = %s",
                (draft_id, rater, score),
            )
        )

    def rated_count(self, draft_id: str) -> int:
        row = self._one("SELECT count(*) AS n FROM votes WHERE draft_id = %s", (draft_id,))
        return int(row["n"]) if row else 0

    def set_vote_reason(self, draft_id: str, rater: str, reason: str, note: str | None = None) -> bool:
        Vote(0, draft_id, "", rater, 1, "button", utcnow(), reason)  # a bad reason fails before any write
        return bool(
            self._run(
                "UPDATE votes SET reason = %s, reason_note = %s"
                " WHERE draft_id = %s AND rater = %s AND score = ANY (%s)",
                (reason, note, draft_id, rater, sorted(NEGATIVE_SCORES)),
            )
        )

    def votes(self, since: datetime | None = None, until: datetime | None = None) -> list[Vote]:
        found = self._all(
            f"SELECT {rows.VOTE_COLUMNS} FROM votes"
            " WHERE (%(since)s::timestamptz IS NULL OR voted_at >= %(since)s)"
            " AND (%(until)s::timestamptz IS NULL OR voted_at < %(until)s)"
            f" ORDER BY voted_at, draft_id {C}, rater {C}",
            {"since": since, "until": until},
        )
        return [rows.vote(row) for row in found]

    def record_outcomes(self, outcomes: Sequence[DraftOutcome]) -> None:
        if not outcomes:
            return
        names = [c.strip() for c in rows.OUTCOME_COLUMNS.split(",")]
        values = ", ".join(f"%({name})s" for name in names)
        with self._tx() as conn, conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO outcomes ({rows.OUTCOME_COLUMNS}) VALUES ({values})"
                " ON CONFLICT (draft_id) DO NOTHING",
                [rows.outcome_params(o) for o in outcomes],
            )

    def outcome(self, draft_id: str) -> DraftOutcome | None:
        row = self._one(f"SELECT {rows.OUTCOME_COLUMNS} FROM outcomes WHERE draft_id = %s", (draft_id,))
        return rows.outcome(row) if row else None

    def outcomes(self, since: datetime | None = None, until: datetime | None = None) -> list[DraftOutcome]:
        found = self._all(
            f"SELECT {rows.OUTCOME_COLUMNS} FROM outcomes"
            " WHERE (%(since)s::timestamptz IS NULL OR replied_at >= %(since)s)"
            " AND (%(until)s::timestamptz IS NULL OR replied_at < %(until)s)"
            f" ORDER BY replied_at, draft_id {C}",
            {"since": since, "until": until},
        )
        return [rows.outcome(row) for row in found]

    # ---- small state --------------------------------------------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return row["value"] if row else default

    def set_meta(self, key: str, value: Any) -> None:
        """Kept as JSON (jsonb): a value that is not JSON fails here, as in the other stores."""
        self._run(
            "INSERT INTO meta (key, value) VALUES (%s, %s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, Jsonb(value)),
        )


def _with_utc(url: str) -> str:
    """The URL's own ``options`` (a search_path, say) with the session's time zone set to UTC."""
    try:
        own = str(conninfo_to_dict(url).get("options") or "")
    except psycopg.ProgrammingError:  # a malformed URL: the pool says so when it connects
        own = ""
    return f"{own} -c timezone=UTC".strip()


def _reason(exc: BaseException) -> str:
    """The first line of a driver error (libpq's messages name the host, never the password)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

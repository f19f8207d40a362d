"""`draftdesk store copy`: a TinyDB store (the partitioned layout's files) into PostgreSQL.

Idempotent and resumable: every row is written with ``ON CONFLICT`` (the files' version wins for
what the files hold, a vote or outcome already in the database is kept), each ticket part is one
transaction, and the parts done are recorded in the database (meta ``store_copy``), so a copy
killed halfway goes on from the part it was in, and a copy run twice changes nothing.

Reads the files directly (``documents``' formats, as ``partitioned`` writes them); the source must
not be written meanwhile (the command holds its writer lock).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bot.store.atomic_storage import AtomicJSONStorage
from bot.store.documents import parse_iso, ts_time
from core.domain import JOB_RUNNING, draft_id_for

COPY_CLAIMER = "store copy"  # the claimer of jobs a stopped bot left running (their lease over)
PROGRESS_KEY = "store_copy"  # meta: {"source": path, "parts": [names done]}
SEND_FIELDS = (
    "id", "ticket_id", "round_id", "draft_id", "user", "state", "public", "edited", "body_sha256",
    "started_at", "author_id", "comment_id", "finished_at", "error", "edited_text",
)  # fmt: skip
_SEND_COLUMNS = ", ".join(f'"{c}"' for c in SEND_FIELDS)
_SEND_VALUES = ", ".join(f"%({c})s" for c in SEND_FIELDS)
SET_META = (
    "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)


@dataclass
class Copied:
    tickets: int = 0
    drafts: int = 0
    votes: int = 0
    outcomes: int = 0
    jobs: int = 0
    parts_skipped: int = 0

    def line(self) -> str:
        skipped = f" ({self.parts_skipped} part(s) copied before, skipped)" if self.parts_skipped else ""
        return (
            f"copied {self.tickets} ticket(s), {self.drafts} draft(s), {self.votes} vote(s), "
            f"{self.outcomes} outcome(s), {self.jobs} job(s){skipped}"
        )


def _read(path: Path) -> dict[str, Any]:
    return AtomicJSONStorage(path, read_only=True).read() or {}


def copy_files(
    hot_file: Path, folder: Path, conn: psycopg.Connection[Any], progress: Callable[[str, int, int], None]
) -> Copied:
    """Copies the store whose hot file and partition folder are given into the (migrated) database
    behind ``conn``; ``progress(what, done, total)`` after each part."""
    copied = Copied()
    done = set(_progress(conn, hot_file).get("parts", []))
    parts = sorted((folder / "tickets").glob("*.json")) + sorted(
        p for p in (folder / "votes").glob("*.json") if p.stem != "weeks"
    )
    for number, path in enumerate(parts, 1):
        name = f"{path.parent.name}/{path.name}"
        if name in done:
            copied.parts_skipped += 1
        else:
            with conn.transaction():
                if path.parent.name == "tickets":
                    _copy_ticket_part(conn, _read(path), copied)
                else:
                    _copy_vote_part(conn, _read(path), copied)
                done.add(name)
                _save_progress(conn, hot_file, done)
        progress("parts", number, len(parts))
    with conn.transaction():
        hot = _read(hot_file)
        _copy_jobs(conn, hot, folder, copied)
        for doc in (hot.get("meta") or {}).values():
            conn.execute(
                SET_META,
                (doc["key"], Jsonb(doc["value"])),
            )
    return copied


def _progress(conn: psycopg.Connection[Any], hot_file: Path) -> dict[str, Any]:
    row = conn.execute("SELECT value FROM meta WHERE key = %s", (PROGRESS_KEY,)).fetchone()
    value = (row["value"] if isinstance(row, dict) else row[0]) if row else None
    if not value or value.get("source") != str(hot_file.resolve()):
        return {}
    return value


def _save_progress(conn: psycopg.Connection[Any], hot_file: Path, done: set[str]) -> None:
    value = {"source": str(hot_file.resolve()), "parts": sorted(done)}
    conn.execute(
        SET_META,
        (PROGRESS_KEY, Jsonb(value)),
    )


def _table(data: dict[str, Any], name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from (data.get(name) or {}).items()


def _copy_ticket_part(conn: psycopg.Connection[Any], data: dict[str, Any], copied: Copied) -> None:
    for _, doc in _table(data, "threads"):
        pending = doc.get("pending_since")
        conn.execute(
            "INSERT INTO ticket_threads (ticket_id, channel, ts, pending_since) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (ticket_id) DO UPDATE SET channel = excluded.channel, ts = excluded.ts,"
            " pending_since = excluded.pending_since",
            (doc["ticket_id"], doc["channel"], doc.get("ts"), parse_iso(pending) if pending else None),
        )
        copied.tickets += 1
    for doc_id, doc in _table(data, "contacts"):
        conn.execute(
            "INSERT INTO contacts (ticket_id, name, email) VALUES (%s, %s, %s) ON CONFLICT (ticket_id)"
            " DO UPDATE SET name = excluded.name, email = excluded.email",
            (int(doc_id), doc["name"], doc["email"]),
        )
    drafts: list[tuple[Any, ...]] = []
    messages: list[tuple[str, str, str]] = []
    sends: list[dict[str, Any]] = []
    for _, doc in _table(data, "rounds"):
        conn.execute(
            "INSERT INTO rounds (id, ticket_id, comment_id, number, status, notices_posted, created_at,"
            " language) VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s) ON CONFLICT (id) DO UPDATE"
            " SET status = excluded.status, notices_posted = excluded.notices_posted,"
            " language = excluded.language",
            (
                doc["id"],
                doc["ticket_id"],
                doc["comment_id"],
                doc["number"],
                doc["status"],
                list(doc.get("notices_posted") or []),
                parse_iso(doc["created_at"]) if doc.get("created_at") else None,
                doc.get("language"),
            ),
        )
        for label, draft in sorted((doc.get("drafts") or {}).items()):
            draft_id = draft_id_for(doc["ticket_id"], doc["number"], label)
            slack_ts = list(draft.get("slack_ts") or [])
            first: datetime | None = ts_time(slack_ts[0]) if slack_ts else None
            drafts.append(
                (
                    draft_id,
                    doc["id"],
                    doc["ticket_id"],
                    doc["number"],
                    label,
                    draft["model"],
                    draft.get("text"),
                    draft.get("error"),
                    draft.get("channel"),
                    slack_ts,
                    draft.get("sent_to_zendesk_by"),
                    draft.get("model_version"),
                    draft.get("prompt"),
                    doc["comment_id"] if doc["comment_id"] >= 0 else None,
                    first,
                    doc.get("language"),
                )
            )
            messages += [(draft["channel"], ts, draft_id) for ts in slack_ts if draft.get("channel")]
        sends += list((doc.get("sends") or {}).values())
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO drafts (id, round_id, ticket_id, round_number, label, model, text, error, channel,"
            " slack_ts, sent_to_zendesk_by, model_version, prompt, comment_id, first_posted_at, language)"
            f" VALUES ({', '.join(['%s'] * 16)}) ON CONFLICT (id) DO UPDATE SET"
            " text = excluded.text, error = excluded.error, channel = excluded.channel,"
            " slack_ts = excluded.slack_ts, sent_to_zendesk_by = excluded.sent_to_zendesk_by,"
            " model_version = excluded.model_version, prompt = excluded.prompt,"
            " first_posted_at = excluded.first_posted_at, language = excluded.language",
            drafts,
        )
        cursor.executemany(
            "INSERT INTO draft_messages (channel, ts, draft_id) VALUES (%s, %s, %s)"
            " ON CONFLICT (channel, ts) DO UPDATE SET draft_id = excluded.draft_id",
            messages,
        )
        cursor.executemany(
            f"INSERT INTO sends ({_SEND_COLUMNS}) VALUES ({_SEND_VALUES})"
            " ON CONFLICT (id) DO UPDATE SET state = excluded.state,"
            " comment_id = excluded.comment_id, finished_at = excluded.finished_at,"
            " error = excluded.error, edited_text = excluded.edited_text, author_id = excluded.author_id",
            [_send_params(doc) for doc in sends],
        )
    copied.drafts += len(drafts)


def _send_params(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        **{key: doc.get(key) for key in ("author_id", "comment_id", "error", "edited_text")},
        **{
            key: doc[key]
            for key in ("id", "ticket_id", "round_id", "draft_id", "user", "state", "public", "edited")
        },
        "body_sha256": doc["body_sha256"],
        "started_at": parse_iso(doc["started_at"]),
        "finished_at": parse_iso(doc["finished_at"]) if doc.get("finished_at") else None,
    }


def _copy_vote_part(conn: psycopg.Connection[Any], data: dict[str, Any], copied: Copied) -> None:
    votes = [
        {
            **{key: doc.get(key) for key in ("model_version", "reason", "reason_note")},
            **{key: doc[key] for key in ("ticket_id", "draft_id", "model", "rater", "score", "source")},
            "voted_at": parse_iso(doc["voted_at"]),
        }
        for _, doc in _table(data, "votes")
    ]
    outcomes = [{**doc, "replied_at": parse_iso(doc["replied_at"])} for _, doc in _table(data, "outcomes")]
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO votes (ticket_id, draft_id, model, rater, score, source, voted_at, reason,"
            " reason_note, model_version) VALUES (%(ticket_id)s, %(draft_id)s, %(model)s, %(rater)s,"
            " %(score)s, %(source)s, %(voted_at)s, %(reason)s, %(reason_note)s, %(model_version)s)"
            " ON CONFLICT (draft_id, rater) DO NOTHING",
            votes,
        )
        cursor.executemany(
            "INSERT INTO outcomes (ticket_id, draft_id, model, reply_comment_id, sent, chrf, edit_distance,"
            " replied_at) VALUES (%(ticket_id)s, %(draft_id)s, %(model)s, %(reply_comment_id)s, %(sent)s,"
            " %(chrf)s, %(edit_distance)s, %(replied_at)s) ON CONFLICT (draft_id) DO NOTHING",
            outcomes,
        )
    copied.votes += len(votes)
    copied.outcomes += len(outcomes)


def _copy_jobs(conn: psycopg.Connection[Any], hot: dict[str, Any], folder: Path, copied: Copied) -> None:
    """The queue and the finished jobs, with their ids."""
    jobs: dict[int, dict[str, Any]] = {}
    # the last id the files gave out, dropped jobs' included, so the database never gives it again
    issued = int(((hot.get("format") or {}).get("1") or {}).get("next_job_id", 1)) - 1
    for path in sorted((folder / "jobs").glob("*.json")):
        part = _read(path)
        jobs.update({int(k): v for k, v in _table(part, "jobs")})
        issued = max(issued, int(((part.get("issued") or {}).get("1") or {}).get("last", 0)))
    jobs.update({int(k): v for k, v in _table(hot, "jobs")})  # the hot copy wins (see finish_job)
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO jobs (id, ticket_id, source, status, attempts, created_at, not_before, last_error,"
            " finished_at, claimed_by, lease_until) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            [
                (
                    job_id,
                    doc["ticket_id"],
                    doc["source"],
                    doc["status"],
                    doc["attempts"],
                    parse_iso(doc["created_at"]),
                    parse_iso(doc["not_before"]),
                    doc.get("last_error"),
                    parse_iso(doc["finished_at"]) if doc.get("finished_at") else None,
                    # left running by a stopped bot: a claim already over, so a replica takes it up
                    COPY_CLAIMER if doc["status"] == JOB_RUNNING else None,
                    datetime.now(UTC) if doc["status"] == JOB_RUNNING else None,
                )
                for job_id, doc in sorted(jobs.items())
            ],
        )
    conn.execute("SELECT setval('jobs_id_seq', greatest((SELECT max(id) FROM jobs), %s, 1))", (issued,))
    copied.jobs = len(jobs)

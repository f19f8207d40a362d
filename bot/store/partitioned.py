"""The partitioned TinyDB store: the ``core.ports.Store`` of `draftdesk run`, whose cost per operation
does not grow with history.

Layout (``[storage] path`` = ``draftdesk.json``)::

    draftdesk.json                 hot file: format marker, meta, the index of sends in progress
    draftdesk.json.d/tickets/N.json   tickets N*25 .. N*25+24: their threads and rounds (drafts inside)
    draftdesk.json.d/votes/N.json     the votes on those tickets' drafts, and how each draft compared
                                      with the reply the agent sent (outcomes)
    draftdesk.json.d/votes/weeks.json which ticket parts hold votes or outcomes of which week (Monday, UTC)
    draftdesk.json.d/messages/HOUR.json Slack (channel, ts) -> draft id, by the UTC hour of ts
                                      (``2025-01-06T13``), a busy hour going on in HOUR/TS.json parts
                                      of at most 200 (``message_index``)
    draftdesk.json.d/jobs/N.json        the jobs N*100 .. N*100+99, queued to finished (``job_parts``)

Every id the services hand back carries its ticket (``t{ticket}r{round}{label}``), so the part of
a round, draft or vote is derived, not looked up; a Slack ``ts`` is a Unix time, so its hour file
is too. The files a ticket's jobs, drafts, messages and votes are written to are bounded by a count
(tickets, jobs, messages), not only by time, so a backlog drafted within one hour costs per ticket
what steady traffic costs (issue 29); the weeks index gains a line per 25 tickets of a week.

Each file is a TinyDB database written through ``AtomicJSONStorage`` (temp file, fsync, rename):
a write rewrites one small file. Operations that touch two files write the index first
(a stale index entry only costs a read, never a wrong answer), so a kill at any moment leaves
every file whole and the store consistent.

A store in the single-file layout of the first version (one TinyDB file whose tables ``jobs``,
``ticket_threads``, ``rounds``, ``drafts``, ``votes``, ``outcomes``, ``sends``, ``contacts`` and
``meta`` hold the ``documents`` formats, and no ``format`` table) is migrated on the first writable
open; the old file stays beside it as ``draftdesk.json.v1-backup``. The migration reads that file's
JSON directly: no code of the old store is left. A read-only open reads a migrated temporary copy
(``open_store``). A store of format 2 (2026-12: the queue in the hot file, finished jobs in a file
per week, which grew without bound within a week) has its jobs moved into ``jobs/N.json`` parts on
the first writable open; a read-only open reads it as it is.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.table import Document

from bot.store.atomic_storage import AtomicJSONStorage, sweep_leftovers
from bot.store.documents import (
    blank_draft,
    iso,
    job_from_doc,
    new_round_doc,
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
from bot.store.job_parts import JobParts, is_week_archive, migrate_format_2
from bot.store.lock import WriterLock
from bot.store.message_index import MessageIndex
from bot.store.votes_io import vote_row
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
    utcnow,
)
from core.files import replace_atomically
from core.ports import Store

log = logging.getLogger(__name__)

FORMAT_VERSION = 3
TICKETS_PER_PART = 25  # ~100 KB of tickets file (plus the drafts' prompts, ~2-15 KB each) and ~30 KB of votes
OPEN_PARTS = 64  # partition databases kept open (cached) by one store
MISC_PART = "misc"  # votes on draft ids that name no ticket (imports, tests)
_TICKET_OF_ID = re.compile(r"^t(\d+)r(\d+)")
# A draft's fields kept inside its round's document (the single-file layout kept them in their own).
DRAFT_FIELDS = ("model", "text", "error", "channel", "sent_to_zendesk_by", "model_version", "prompt")


def part_of_ticket(ticket_id: int) -> str:
    return f"{ticket_id // TICKETS_PER_PART:06d}"


def part_of_id(round_or_draft_id: str) -> str | None:
    """The part of a round or draft id (``t12r1``, ``t12r1A``); None for an id that names no ticket."""
    match = _TICKET_OF_ID.match(round_or_draft_id)
    return part_of_ticket(int(match.group(1))) if match else None


def week_of(moment: datetime) -> str:
    """The Monday (UTC) of the moment's week, as ``YYYY-MM-DD``."""
    day = moment.astimezone(UTC).date()
    return (day - timedelta(days=day.weekday())).isoformat()


def history_folder(path: Path) -> Path:
    """Where the partitions of the store at ``path`` live: a folder beside it."""
    return path.with_name(path.name + ".d")


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".v1-backup")


def open_store(path: Path, read_only: bool = False) -> Store:
    """The store at ``path``.

    A read-only open (reports, exports, `jobs list`) of a store still in the single-file layout
    (upgraded, but `draftdesk run` has not migrated it yet) gives ``MigratedCopy``: the same answers
    the store will give once migrated, and the user's file is not touched.
    """
    if read_only and path.exists() and not PartitionedStore.is_partitioned(path):
        return MigratedCopy.of(path)
    return PartitionedStore(path, read_only=read_only)


class PartitionedStore:
    """Thread-safe store in a small hot TinyDB file plus partition files. One lock guards every call;
    each critical section reads or rewrites a few small files.

    ``read_only`` never writes (reports and exports while `draftdesk run` writes). A writable store
    holds ``PATH.lock`` (``bot.store.lock``) until closed: a second writer gets ``StoreInUse``.
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.folder = history_folder(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._parts: OrderedDict[Path, TinyDB] = OrderedDict()
        self._vote_weeks: set[tuple[str, str]] | None = None
        self._writer = WriterLock(path)
        if not read_only:
            self._writer.acquire()
        try:
            self._open(read_only)
        except BaseException:
            self._writer.release()
            raise

    def _open(self, read_only: bool) -> None:
        path = self.path
        self._hot = TinyDB(path, storage=AtomicJSONStorage, read_only=read_only)
        data = self._hot.storage.read()  # a damaged file is reported now, not at the first vote
        self._meta = self._hot.table("meta")
        self._pending_sends = self._hot.table("pending_sends")  # an index: the records live in rounds
        self._messages = MessageIndex(
            self.folder / "messages", lambda name: self._part("messages", name), read_only
        )
        if not read_only:
            if data and "format" not in data:
                self._migrate_v1()
            elif "format" not in (data or {}):
                self._hot_change(lambda d: d.update(format={"1": {"version": FORMAT_VERSION}}))
            elif self._format() < 3:
                self._migrate_format_2()
            for sub in ("tickets", "votes", "messages", "jobs"):
                (self.folder / sub).mkdir(parents=True, exist_ok=True)
                sweep_leftovers(self.folder / sub)
            for archive in filter(is_week_archive, (self.folder / "jobs").glob("*.json")):
                archive.unlink()  # format 2's, left by a migration killed before it removed them
        self._queue = JobParts(
            self.folder / "jobs", lambda name: self._part("jobs", name), self._marker(), self._change_marker
        )
        if self._format() < 3:  # read-only, format 2: its queue is in the hot file
            self._queue.adopt((self._hot.storage.read() or {}).get("jobs") or {})

    def _marker(self) -> dict[str, Any]:
        return dict(((self._hot.storage.read() or {}).get("format") or {}).get("1") or {})

    def _format(self) -> int:
        return int(self._marker().get("version", 1))

    def _change_marker(self, change: Callable[[dict[str, Any]], None]) -> None:
        self._hot_change(
            lambda data: change(data.setdefault("format", {}).setdefault("1", {"version": FORMAT_VERSION}))
        )

    @staticmethod
    def is_partitioned(path: Path) -> bool:
        """Whether the file at ``path`` is the hot file of this store (not a single-file store)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):  # not text, not JSON: opening it says what is wrong
            return False
        return isinstance(data, dict) and "format" in data

    def close(self) -> None:
        with self._lock:
            for db in self._parts.values():
                db.close()
            self._parts.clear()
            self._hot.close()
            self._writer.release()

    def snapshot(self, target: Path) -> int:
        """A consistent copy of the store in ``target``, a new folder on the same file system (for
        `draftdesk backup`); how many files.

        A file is only ever replaced by a rename, never changed in place, so a hard link keeps the
        content it had when linked while the store writes on. Every file is linked first without
        the lock (a year's 15,000 files take seconds); then, under the lock, the folders are listed
        again and only what was replaced meanwhile is linked again (what went, removed), so the
        copy is the store at that moment while writes wait for a listing, not for the linking."""
        if self.read_only:
            raise PermissionError(f"{self.path} was opened read-only: a snapshot needs the writer's lock")
        target.mkdir(mode=0o700)
        linked = self._link_replaced(target, {})
        with self._lock:
            return len(self._link_replaced(target, linked))

    def _files(self) -> dict[str, int]:
        """Each file of the store (its path relative to the store's folder) and its inode, from the
        folder listings alone: no call per file (this runs under the lock)."""
        skip = len(str(self.path.parent)) + 1
        found = {self.path.name: self.path.stat().st_ino}
        folders = [str(self.folder)]
        while folders:
            try:
                entries = list(os.scandir(folders.pop()))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.name.startswith("."):  # a writer's temporary file
                    continue
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    found[entry.path[skip:]] = entry.inode()
        return found

    def _link_replaced(self, target: Path, linked: dict[str, int]) -> dict[str, int]:
        """Links into ``target`` each file not linked yet or replaced since ``linked`` (relative path
        → the inode its link holds), removes the links of files gone; the links now held."""
        base = self.path.parent
        held: dict[str, int] = {}
        for relative, inode in self._files().items():
            if linked.get(relative) == inode:  # a link keeps its inode's number from being reused
                held[relative] = inode
                continue
            link = target / relative
            link.unlink(missing_ok=True)
            link.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(base / relative, link)
            except FileNotFoundError:  # removed since listed: only in the pass without the lock
                continue
            held[relative] = link.stat().st_ino
        for gone in linked.keys() - held.keys():
            (target / gone).unlink(missing_ok=True)
        return held

    # ---- files ----------------------------------------------------------------------------------

    def _part(self, kind: str, name: str) -> TinyDB:
        """The partition database ``kind/name.json``, kept open in a small LRU cache."""
        path = self.folder / kind / f"{name}.json"
        db = self._parts.get(path)
        if db is None:
            db = TinyDB(path, storage=AtomicJSONStorage, read_only=self.read_only, sweep=False)
            self._parts[path] = db
            if len(self._parts) > OPEN_PARTS:
                self._parts.popitem(last=False)[1].close()
        else:
            self._parts.move_to_end(path)
        return db

    def _hot_change(self, change: Callable[[dict[str, Any]], None]) -> None:
        """One atomic write of the hot file changing several tables at once (a job and a counter)."""
        data = self._hot.storage.read() or {}
        change(data)
        self._hot.storage.write(data)
        for name in ("meta", "pending_sends"):
            self._hot.table(name).clear_cache()

    # ---- jobs: a durable queue with one queued job per ticket (``job_parts``) ------------------

    def enqueue(self, ticket_id: int, source: str, now: datetime | None = None) -> bool:
        """Queue a ticket unless a job for it is already waiting. Returns True if a job was added."""
        with self._lock:
            if self._queue.queued_for(ticket_id) is not None:
                return False
            self._queue.add(ticket_id, source, now or utcnow())
            return True

    def claim_next_job(self, now: datetime | None = None) -> Job | None:
        with self._lock:
            job_id = self._queue.earliest_due(now or utcnow())
            if job_id is None:
                return None
            attempts = self._queue.get(job_id)["attempts"] + 1  # type: ignore[index]
            self._queue.update({job_id: {"status": JOB_RUNNING, "attempts": attempts}})
            return self._job(job_id)

    def _job(self, job_id: int) -> Job | None:
        doc = self._queue.get(job_id)
        return job_from_doc(Document(doc, doc_id=job_id)) if doc is not None else None

    def finish_job(self, job_id: int) -> None:
        with self._lock:
            if self._queue.get(job_id) is not None:
                self._queue.update(
                    {job_id: {"status": JOB_DONE, "last_error": None, "finished_at": iso(utcnow())}}
                )

    def retry_job(self, job_id: int, error: str, not_before: datetime) -> None:
        with self._lock:
            if self._queue.get(job_id) is not None:
                self._queue.update(
                    {job_id: {"status": JOB_QUEUED, "last_error": error, "not_before": iso(not_before)}}
                )

    def fail_job(self, job_id: int, error: str) -> None:
        with self._lock:
            if self._queue.get(job_id) is not None:
                self._queue.update({job_id: {"status": JOB_FAILED, "last_error": error}})

    def requeue_interrupted_jobs(self) -> int:
        """At start-up: jobs left running by a killed process go back to the queue."""
        with self._lock:
            running = [job.id for job in self._queue.live() if job.status == JOB_RUNNING]
            self._queue.update({job_id: {"status": JOB_QUEUED} for job_id in running})
            return len(running)

    def requeue_job(self, job_id: int, now: datetime | None = None) -> Job | None:
        now = now or utcnow()
        with self._lock:
            doc = self._queue.get(job_id)
            if doc is None or doc["status"] not in (JOB_QUEUED, JOB_FAILED):
                return None
            other = self._queue.queued_for(doc["ticket_id"], other_than=job_id)
            if other is not None:
                self._queue.remove(job_id)
                return self._job(other)
            self._queue.update({job_id: {"status": JOB_QUEUED, "attempts": 0, "not_before": iso(now)}})
            return self._job(job_id)

    def drop_job(self, job_id: int) -> bool:
        with self._lock:
            doc = self._queue.get(job_id)
            if doc is None or doc["status"] not in (JOB_QUEUED, JOB_FAILED):
                return False
            self._queue.remove(job_id)
            return True

    def jobs(self, status: str | None = None) -> list[Job]:
        """Jobs by id. Finished jobs are read from every part: slow on a long history, and only
        asked for by tools, not by the running bot."""
        with self._lock:
            found = (
                self._queue.all_jobs()
                if status in (None, JOB_DONE)
                else {j.id: j for j in self._queue.live()}
            )
            return [job for _, job in sorted(found.items()) if status is None or job.status == status]

    def next_job_due(self) -> datetime | None:
        with self._lock:
            return self._queue.next_due()

    # ---- ticket threads ---------------------------------------------------------------------

    def ticket_thread(self, ticket_id: int) -> tuple[str, str] | None:
        with self._lock:
            doc = self._part("tickets", part_of_ticket(ticket_id)).table("threads").get(doc_id=ticket_id)
            return (doc["channel"], doc["ts"]) if doc and doc.get("ts") else None

    def save_ticket_thread(self, ticket_id: int, channel: str, ts: str) -> None:
        with self._lock:
            threads = self._part("tickets", part_of_ticket(ticket_id)).table("threads")
            threads.upsert(
                Document(
                    {"ticket_id": ticket_id, "channel": channel, "ts": ts, "created_at": iso(utcnow())},
                    doc_id=ticket_id,
                )
            )

    def mark_thread_pending(self, ticket_id: int, channel: str, since: datetime) -> None:
        with self._lock:
            threads = self._part("tickets", part_of_ticket(ticket_id)).table("threads")
            threads.upsert(
                Document(
                    {"ticket_id": ticket_id, "channel": channel, "ts": None, "pending_since": iso(since)},
                    doc_id=ticket_id,
                )
            )

    def thread_pending(self, ticket_id: int) -> tuple[str, datetime] | None:
        with self._lock:
            doc = self._part("tickets", part_of_ticket(ticket_id)).table("threads").get(doc_id=ticket_id)
            return pending_thread(doc)

    # ---- rounds and drafts (a round's drafts live inside its document) -------------------------

    def _rounds_of(self, ticket_id: int) -> Any:
        return self._part("tickets", part_of_ticket(ticket_id)).table("rounds")

    def _round_doc(self, round_or_draft_id: str) -> Any:
        part = part_of_id(round_or_draft_id)
        if part is None:
            return None
        round_id = _TICKET_OF_ID.match(round_or_draft_id).group(0)  # type: ignore[union-attr]
        return self._part("tickets", part).table("rounds").get(Query().id == round_id)

    def _change_draft(self, draft_id: str, change: Callable[[dict[str, Any]], None]) -> bool:
        """Apply ``change`` to the draft inside its round document; False for an unknown draft."""
        doc = self._round_doc(draft_id)
        label = draft_id[len(doc["id"]) :] if doc else ""
        if doc is None or label not in doc["drafts"]:
            return False

        def update(round_doc: dict[str, Any]) -> None:
            change(round_doc["drafts"][label])

        self._rounds_of(doc["ticket_id"]).update(update, doc_ids=[doc.doc_id])
        return True

    def round_for(self, ticket_id: int, comment_id: int) -> RoundRecord | None:
        q = Query()
        with self._lock:
            doc = self._rounds_of(ticket_id).get((q.ticket_id == ticket_id) & (q.comment_id == comment_id))
            return round_from_doc(doc) if doc else None

    def create_round(
        self,
        ticket_id: int,
        comment_id: int,
        assignments: Sequence[tuple[str, str]],
        language: str | None = None,
    ) -> RoundRecord:
        """The round and its drafts in one document: one atomic write."""
        with self._lock:
            rounds = self._rounds_of(ticket_id)
            number = rounds.count(Query().ticket_id == ticket_id) + 1
            doc = new_round_doc(ticket_id, comment_id, number, utcnow(), language)
            doc["drafts"] = {label: blank_draft(model) for label, model in assignments}
            rounds.insert(doc)
            return round_from_doc(doc)

    def mark_round_posted(self, round_id: str) -> None:
        with self._lock:
            doc = self._round_doc(round_id)
            if doc is not None:
                self._rounds_of(doc["ticket_id"]).update({"status": ROUND_POSTED}, doc_ids=[doc.doc_id])

    def mark_notice_posted(self, round_id: str, notice: str) -> None:
        with self._lock:
            doc = self._round_doc(round_id)
            if doc is not None and notice not in doc["notices_posted"]:
                self._rounds_of(doc["ticket_id"]).update(
                    {"notices_posted": [*doc["notices_posted"], notice]}, doc_ids=[doc.doc_id]
                )

    @staticmethod
    def _drafts(doc: Any) -> list[DraftRecord]:
        return [
            DraftRecord(
                id=draft_id_for(doc["ticket_id"], doc["number"], label),
                ticket_id=doc["ticket_id"],
                round_id=doc["id"],
                round_number=doc["number"],
                label=label,
                model=draft["model"],
                text=draft["text"],
                error=draft["error"],
                channel=draft["channel"],
                slack_ts=tuple(draft["slack_ts"]),
                sent_to_zendesk_by=draft.get("sent_to_zendesk_by"),
                model_version=draft.get("model_version"),
                prompt=draft.get("prompt"),
                comment_id=doc.get("comment_id"),
                language=doc.get("language"),
            )
            for label, draft in sorted(doc["drafts"].items())
        ]

    def drafts_for_round(self, round_id: str) -> list[DraftRecord]:
        with self._lock:
            doc = self._round_doc(round_id)
            return self._drafts(doc) if doc and doc["id"] == round_id else []

    def drafts_for_ticket(self, ticket_id: int) -> list[DraftRecord]:
        with self._lock:
            docs = self._rounds_of(ticket_id).search(Query().ticket_id == ticket_id)
            return [d for doc in sorted(docs, key=lambda d: d["number"]) for d in self._drafts(doc)]

    def save_generated(
        self,
        draft_id: str,
        text: str | None,
        error: str | None,
        model_version: str | None = None,
        prompt: str | None = None,
    ) -> None:
        with self._lock:
            self._change_draft(
                draft_id,
                lambda d: d.update(text=text, error=error, model_version=model_version, prompt=prompt),
            )

    def add_draft_message(self, draft_id: str, channel: str, ts: str) -> None:
        """The message index first: if the draft write is lost, the index names a message that the
        draft will be posted again for, which still belongs to that draft."""
        with self._lock:
            if self.draft(draft_id) is None:
                raise KeyError(draft_id)
            self._messages.add(channel, ts, draft_id)

            def add(draft: dict[str, Any]) -> None:
                draft["channel"] = channel
                draft["slack_ts"] = [*draft["slack_ts"], ts]

            self._change_draft(draft_id, add)

    def draft(self, draft_id: str) -> DraftRecord | None:
        with self._lock:
            doc = self._round_doc(draft_id)
            if doc is None:
                return None
            return next((d for d in self._drafts(doc) if d.id == draft_id), None)

    def draft_by_message(self, channel: str, ts: str) -> DraftRecord | None:
        """The draft whose (any) Slack message has this ts: one part of its hour's index, then one
        ticket part."""
        with self._lock:
            draft_id = self._messages.find(channel, ts)
            return self.draft(draft_id) if draft_id else None

    def mark_sent(self, draft_id: str, user: str) -> None:
        with self._lock:
            self._change_draft(draft_id, lambda d: d.update(sent_to_zendesk_by=user))

    def drafts_posted_since(self, since: datetime) -> list[DraftRecord]:
        """Reads the message index of the hours (or, in older stores, days) from ``since`` on: a
        week is 168 files of a few KB, read without filling the cache."""
        hour = since.astimezone(UTC).strftime("%Y-%m-%dT%H")
        found: dict[str, DraftRecord] = {}
        with self._lock:
            for doc in self._messages.rows_since(hour):
                if doc["draft_id"] in found or ts_time(doc["ts"]) < since:
                    continue
                draft = self.draft(doc["draft_id"])
                if draft is not None and draft.slack_ts and ts_time(draft.slack_ts[0]) >= since:
                    found[draft.id] = draft
        return sorted(found.values(), key=lambda d: (d.ticket_id, d.round_number, d.label))

    # ---- sends into Zendesk (inside their round's document), and the requester's contact -------

    def record_send(self, send: SendRecord) -> None:
        """A pending send is indexed in the hot file first, a finished one leaves the index last: a
        kill between the two writes leaves an index entry too many (skipped when read), never a
        pending send that the next start does not see."""
        with self._lock:
            doc = self._round_doc(send.round_id)
            if doc is None or doc["id"] != send.round_id or self.draft(send.draft_id) is None:
                raise KeyError(send.draft_id)
            is_pending = Query().id == send.id
            if send.state == SEND_PENDING:
                self._pending_sends.upsert({"id": send.id, "round_id": send.round_id}, is_pending)

            def add(round_doc: dict[str, Any]) -> None:
                round_doc.setdefault("sends", {})[send.id] = send_to_doc(send)

            self._rounds_of(doc["ticket_id"]).update(add, doc_ids=[doc.doc_id])
            if send.state != SEND_PENDING and self._pending_sends.contains(is_pending):
                self._pending_sends.remove(is_pending)

    def sends_for_round(self, round_id: str) -> list[SendRecord]:
        with self._lock:
            doc = self._round_doc(round_id)
            if doc is None or doc["id"] != round_id:
                return []
            sends = [send_from_doc(d) for d in (doc.get("sends") or {}).values()]
            return sorted(sends, key=lambda s: (s.started_at, s.id))

    def pending_sends(self) -> list[SendRecord]:
        with self._lock:
            found = []
            for entry in self._pending_sends.all():
                send = next((s for s in self.sends_for_round(entry["round_id"]) if s.id == entry["id"]), None)
                if send is not None and send.state == SEND_PENDING:
                    found.append(send)
            return sorted(found, key=lambda s: (s.started_at, s.id))

    def save_ticket_contact(self, ticket_id: int, name: str, email: str) -> None:
        with self._lock:
            contacts = self._part("tickets", part_of_ticket(ticket_id)).table("contacts")
            contacts.upsert(Document({"name": name, "email": email}, doc_id=ticket_id))

    def ticket_contact(self, ticket_id: int) -> tuple[str, str] | None:
        with self._lock:
            doc = self._part("tickets", part_of_ticket(ticket_id)).table("contacts").get(doc_id=ticket_id)
            return (doc["name"], doc["email"]) if doc else None

    # ---- votes: one per (draft, rater), the latest wins; kept by the draft's ticket part --------

    def _votes_of(self, draft_id: str) -> Any:
        return self._part("votes", part_of_id(draft_id) or MISC_PART).table("votes")

    def _known_vote_weeks(self) -> set[tuple[str, str]]:
        if self._vote_weeks is None:
            index = self._part("votes", "weeks").table("weeks")
            self._vote_weeks = {(doc["week"], doc["part"]) for doc in index.all()}
        return self._vote_weeks

    def _note_vote_week(self, week: str, part: str) -> None:
        """Index first, vote second: a kill between leaves an index entry too many (a file read for
        nothing), never a vote a report misses."""
        known = self._known_vote_weeks()
        if (week, part) not in known:
            self._part("votes", "weeks").table("weeks").insert({"week": week, "part": part})
            known.add((week, part))

    def record_vote(self, vote: Vote) -> None:
        q = Query()
        with self._lock:
            self._note_vote_week(week_of(vote.voted_at), part_of_id(vote.draft_id) or MISC_PART)
            self._votes_of(vote.draft_id).upsert(
                vote_row(vote), (q.draft_id == vote.draft_id) & (q.rater == vote.rater)
            )

    def remove_reaction_vote(self, draft_id: str, rater: str, score: int) -> bool:
        """Removing a reaction removes the vote only if that reaction is still the rater's vote."""
        q = Query()
        cond = (q.draft_id == draft_id) & (q.rater == rater) & (q.source == "reaction") & (q.score == score)
        with self._lock:
            votes = self._votes_of(draft_id)
            return bool(votes.contains(cond) and votes.remove(cond))

    def set_vote_reason(self, draft_id: str, rater: str, reason: str, note: str | None = None) -> bool:
        Vote(0, draft_id, "", rater, 1, "button", utcnow(), reason)  # a bad reason fails before any write
        q = Query()
        with self._lock:
            updated = self._votes_of(draft_id).update(
                {"reason": reason, "reason_note": note},
                (q.draft_id == draft_id) & (q.rater == rater) & q.score.one_of(sorted(NEGATIVE_SCORES)),
            )
            return bool(updated)

    def rated_count(self, draft_id: str) -> int:
        with self._lock:
            return self._votes_of(draft_id).count(Query().draft_id == draft_id)

    def votes(self, since: datetime | None = None, until: datetime | None = None) -> list[Vote]:
        """Votes with since <= voted_at < until, oldest first: only the parts that hold votes of the
        weeks in range are read, each file once, outside the lock (files are only ever replaced
        whole), and without filling the cache."""
        result = []
        for storage in self._vote_parts(since, until):
            result += votes_from_docs(((storage.read() or {}).get("votes") or {}).values(), since, until)
        return sorted(result, key=lambda v: (v.voted_at, v.draft_id, v.rater))

    def _vote_parts(self, since: datetime | None, until: datetime | None) -> Iterator[AtomicJSONStorage]:
        """The vote part files holding votes or outcomes of the weeks in [since, until), read-only
        and uncached, each file once."""
        with self._lock:
            weeks = set(self._known_vote_weeks()) if self.folder.exists() else set()
        low = week_of(since) if since else None
        high = until.astimezone(UTC).date().isoformat() if until else None
        parts = sorted(
            {part for week, part in weeks if (low is None or week >= low) and (high is None or week <= high)}
        )
        for part in parts:
            yield AtomicJSONStorage(self.folder / "votes" / f"{part}.json", read_only=True)

    # ---- outcomes: how each draft compared with the reply sent; beside the votes of its ticket --

    def record_outcomes(self, outcomes: Sequence[DraftOutcome]) -> None:
        q = Query()
        with self._lock:
            for outcome in outcomes:
                part = part_of_id(outcome.draft_id) or MISC_PART
                self._note_vote_week(week_of(outcome.replied_at), part)
                table = self._part("votes", part).table("outcomes")
                if not table.contains(q.draft_id == outcome.draft_id):
                    table.insert(outcome_doc(outcome))

    def outcome(self, draft_id: str) -> DraftOutcome | None:
        with self._lock:
            table = self._part("votes", part_of_id(draft_id) or MISC_PART).table("outcomes")
            doc = table.get(Query().draft_id == draft_id)
        return outcome_from_doc(doc) if doc else None

    def outcomes(self, since: datetime | None = None, until: datetime | None = None) -> list[DraftOutcome]:
        """Like ``votes``: only the parts the weeks index names for the weeks in range are read."""
        docs: list[Any] = []
        for storage in self._vote_parts(since, until):
            docs += ((storage.read() or {}).get("outcomes") or {}).values()
        return outcomes_from_docs(docs, since, until)

    # ---- small state: poll cursor, digest bookkeeping ----------------------------------------

    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            doc = self._meta.get(Query().key == key)
            return copy.deepcopy(doc["value"]) if doc else default

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self._meta.upsert({"key": key, "value": copy.deepcopy(value)}, Query().key == key)

    # ---- bulk import: migration of a single-file store, and building big stores quickly --------

    def import_history(
        self,
        threads: Iterable[dict[str, Any]] = (),
        rounds: Iterable[dict[str, Any]] = (),
        drafts: Iterable[dict[str, Any]] = (),
        votes: Iterable[dict[str, Any]] = (),
        sends: Iterable[dict[str, Any]] = (),
        contacts: Iterable[dict[str, Any]] = (),
        outcomes: Iterable[dict[str, Any]] = (),
    ) -> None:
        """Adds records in the single-file layout (one document per thread, round, draft, vote, send,
        contact and outcome: ``documents``' formats), writing each touched file once. Meant for a
        store no one else writes yet: migration and benchmarks."""
        with self._lock:
            by_part: dict[str, dict[str, dict[str, Any]]] = {}
            for doc in threads:
                part = by_part.setdefault(part_of_ticket(doc["ticket_id"]), {})
                part.setdefault("threads", {})[str(doc["ticket_id"])] = dict(doc)
            rounds_by_id: dict[str, dict[str, Any]] = {}
            for doc in rounds:
                notices = list(doc.get("notices_posted", ()))
                rounds_by_id[doc["id"]] = {**doc, "notices_posted": notices, "drafts": {}}
            messages: list[dict[str, Any]] = []
            for doc in drafts:
                round_doc = rounds_by_id.get(doc["round_id"])
                if round_doc is None:  # a draft whose round was never written: keep it all the same
                    round_doc = rounds_by_id[doc["round_id"]] = {
                        "id": doc["round_id"],
                        "ticket_id": doc["ticket_id"],
                        "comment_id": -1,
                        "number": doc["round_number"],
                        "status": ROUND_GENERATING,
                        "notices_posted": [],
                        "drafts": {},
                    }
                round_doc["drafts"][doc["label"]] = {key: doc.get(key) for key in DRAFT_FIELDS} | {
                    "slack_ts": list(doc.get("slack_ts") or [])
                }
                messages += (
                    {"channel": doc["channel"], "ts": ts, "draft_id": doc["id"]}
                    for ts in doc.get("slack_ts") or []
                )
            pending: list[dict[str, Any]] = []
            for doc in sends:
                if doc["round_id"] in rounds_by_id:  # a send of a draft that was never written: none
                    rounds_by_id[doc["round_id"]].setdefault("sends", {})[doc["id"]] = dict(doc)
                    if doc["state"] == SEND_PENDING:
                        pending.append({"id": doc["id"], "round_id": doc["round_id"]})
            for doc in contacts:
                part = by_part.setdefault(part_of_ticket(doc["ticket_id"]), {})
                part.setdefault("contacts", {})[str(doc["ticket_id"])] = {
                    "name": doc["name"],
                    "email": doc["email"],
                }
            for entry in pending:  # the index first, as record_send writes it
                self._pending_sends.upsert(entry, Query().id == entry["id"])
            for round_doc in rounds_by_id.values():
                part = by_part.setdefault(part_of_ticket(round_doc["ticket_id"]), {})
                table = part.setdefault("rounds", {})
                table[str(len(table) + 1)] = round_doc
            self._merge("tickets", by_part)
            self._messages.add_many(messages)
            vote_parts: dict[str, dict[str, dict[str, Any]]] = {}
            for doc in votes:
                part = part_of_id(doc["draft_id"]) or MISC_PART
                self._note_vote_week(week_of(parse_iso(doc["voted_at"])), part)
                table = vote_parts.setdefault(part, {}).setdefault("votes", {})
                table[str(len(table) + 1)] = dict(doc)
            for doc in outcomes:
                part = part_of_id(doc["draft_id"]) or MISC_PART
                self._note_vote_week(week_of(parse_iso(doc["replied_at"])), part)
                table = vote_parts.setdefault(part, {}).setdefault("outcomes", {})
                table[str(len(table) + 1)] = dict(doc)
            self._merge("votes", vote_parts)

    def _merge(self, kind: str, parts: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Appends the documents to each part's tables (renumbered after the ones there): one write each."""
        for name, tables in parts.items():
            db = self._part(kind, name)
            data = db.storage.read() or {}
            for table_name, docs in tables.items():
                table = data.setdefault(table_name, {})
                if table_name in ("threads", "contacts"):
                    table.update(docs)
                    continue
                start = max((int(k) for k in table), default=0)
                for offset, doc in enumerate(docs.values(), 1):
                    table[str(start + offset)] = doc
            db.storage.write(data)
            for table_name in tables:
                db.table(table_name).clear_cache()
                db.table(table_name)._next_id = None

    def _migrate_v1(self) -> None:
        """Single file -> this layout. The old file is first copied to ``*.v1-backup`` (kept), and the
        hot file is rewritten last: a kill before that leaves the old file, and the next open redoes
        the migration from the backup."""
        backup = backup_path(self.path)
        if not backup.exists():
            _atomic_copy(self.path, backup)
        old = json.loads(backup.read_text(encoding="utf-8"))
        if self.folder.exists():
            shutil.rmtree(self.folder)  # a migration that was killed halfway
        self._parts.clear()
        self._vote_weeks = None
        self.import_history(
            threads=(old.get("ticket_threads") or {}).values(),
            rounds=(old.get("rounds") or {}).values(),
            drafts=(old.get("drafts") or {}).values(),
            votes=(old.get("votes") or {}).values(),
            sends=(old.get("sends") or {}).values(),
            contacts=(old.get("contacts") or {}).values(),
            outcomes=(old.get("outcomes") or {}).values(),
        )
        jobs = {str(k): v for k, v in (old.get("jobs") or {}).items()}
        next_job_id = max(map(int, jobs), default=0) + 1
        live = self._write_job_parts(jobs, [], next_job_id)
        hot = {
            "format": {"1": {"version": FORMAT_VERSION, "next_job_id": next_job_id, "live_job_parts": live}},
            "meta": old.get("meta") or {},
            "pending_sends": (self._hot.storage.read() or {}).get("pending_sends") or {},
        }
        self._hot.storage.write(hot)
        self._pending_sends.clear_cache()
        self._meta.clear_cache()

    def _write_job_parts(self, hot_jobs: dict[str, Any], archives: list[Path], next_job_id: int) -> list[str]:
        """Writes the job parts of an older format's jobs (each part whole); the parts with live jobs."""
        parts, live = migrate_format_2(hot_jobs, archives, next_job_id)
        for name, data in parts.items():
            AtomicJSONStorage(self.folder / "jobs" / f"{name}.json").write(data)
        return live

    def _migrate_format_2(self) -> None:
        """Format 2 → 3: the queue leaves the hot file and the week archives become job parts. The
        parts are written first, the hot file next, the archives removed last: a kill before the hot
        file is written redoes it all at the next open (the parts are rewritten whole); a kill after
        it leaves archives that the next open removes."""
        data = self._hot.storage.read() or {}
        marker = self._marker()
        archives = sorted(filter(is_week_archive, (self.folder / "jobs").glob("*.json")))
        log.info(
            "the store's jobs move from the hot file and %d week files to parts of 100 jobs", len(archives)
        )
        next_job_id = int(marker.get("next_job_id", 1))
        live = self._write_job_parts(data.get("jobs") or {}, archives, next_job_id)
        marker.update(version=FORMAT_VERSION, next_job_id=next_job_id, live_job_parts=live)
        new = {key: value for key, value in data.items() if key != "jobs"} | {"format": {"1": marker}}
        self._hot.storage.write(new)
        for name in ("meta", "pending_sends"):
            self._hot.table(name).clear_cache()
        for archive in archives:
            archive.unlink()


class MigratedCopy(PartitionedStore):
    """A read-only store over a single-file store that has not been migrated yet: the file is read
    once (a damaged one is reported under its own name), migrated into a temporary folder, and read
    from there; ``close`` deletes the folder.

    Why a copy rather than refusing: a report or export run right after an upgrade, before the
    first `draftdesk run`, should answer, and a reader must never write the user's store (the
    running old version may be its writer). Why not migrate in place: only the writer migrates,
    under the store's lock. The copy costs one migration per open, a few seconds for a large store,
    and lasts only until that first run.
    """

    def __init__(self, copy: Path, folder: tempfile.TemporaryDirectory[str]) -> None:
        self._temporary = folder
        super().__init__(copy, read_only=True)

    @classmethod
    def of(cls, path: Path) -> Store:
        data = AtomicJSONStorage(path, read_only=True).read() or {}
        if "format" in data:  # migrated by a writer since we looked
            return PartitionedStore(path, read_only=True)
        log.warning(
            "%s is in the single-file layout of draftdesk before the partitioned store: reading a migrated "
            "temporary copy (the file is not changed); the next `draftdesk run` migrates it in place",
            path,
        )
        folder = tempfile.TemporaryDirectory(prefix="draftdesk-v1-")
        try:
            copy = Path(folder.name) / path.name
            copy.write_text(json.dumps(data), encoding="utf-8")
            PartitionedStore(copy).close()  # the writable open migrates the copy
            return cls(copy, folder)
        except BaseException:
            folder.cleanup()
            raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._temporary.cleanup()


def _numbered(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(i): row for i, row in enumerate(rows, 1)}


def _atomic_copy(source: Path, target: Path) -> None:
    with source.open("rb") as original:
        replace_atomically(target, lambda handle: shutil.copyfileobj(original, handle))

"""The partitioned store's draft queue: every job in a part file of 100 consecutive job ids, from
the moment it is queued until it is dropped.

Why not the hot file (format 2 kept queued jobs there and finished ones in a file per week): a
backlog of thousands of tickets made each enqueue, claim and finish rewrite a file holding the whole
queue, and a burst's finished jobs made each finish rewrite a week's archive that grew with every
ticket of that week. Here a write rewrites one part of at most 100 jobs, whatever came before.

What the process keeps in memory: the live jobs (queued, running, failed), read at open from the
parts that hold them. Which parts those are is ``live_job_parts`` in the hot file's format marker,
written only when a part other than the newest gains or loses its last live job (about twice per
100 jobs): the newest part is always read. Order of writes: a part is listed before it holds a live
job outside the newest part, and unlisted after its last live job left, so a kill at any moment
leaves at most a listing too many (a part read for nothing), never a live job that is not read.

Each part records the last job id issued (``issued``), so a dropped job's id is never given again.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.table import Document

from bot.store.atomic_storage import AtomicJSONStorage
from bot.store.documents import iso, job_from_doc, parse_iso
from core.domain import JOB_FAILED, JOB_QUEUED, JOB_RUNNING, Job

JOBS_PER_PART = 100
LIVE = (JOB_QUEUED, JOB_RUNNING, JOB_FAILED)
_PART_NAME = re.compile(r"^\d{6,}$")
_WEEK_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # format 2's archives of finished jobs, by week


def part_of_job(job_id: int) -> str:
    return f"{job_id // JOBS_PER_PART:06d}"


def is_week_archive(path: Path) -> bool:
    return bool(_WEEK_NAME.match(path.stem))


class JobParts:
    """The queue's operations on its part files (``open_part(name)``: the cached TinyDB of
    ``jobs/NAME.json``). The caller holds the store's lock around every call."""

    def __init__(
        self,
        folder: Path,
        open_part: Callable[[str], TinyDB],
        marker: dict[str, Any],
        change_marker: Callable[[Callable[[dict[str, Any]], None]], None],
    ) -> None:
        self.folder = folder
        self._open_part = open_part
        self._change_marker = change_marker
        self._listed: set[str] = set(marker.get("live_job_parts") or ())
        names = [p.stem for p in folder.glob("*.json") if _PART_NAME.match(p.stem)] if folder.exists() else []
        self._newest = max(names, default=part_of_job(0))
        newest = self._data(self._newest)
        self._next_id = max(int(marker.get("next_job_id", 1)), _last_issued(newest) + 1)
        self._live: dict[int, dict[str, Any]] = {}
        self._live_in_part: Counter[str] = Counter()
        self._queued_of_ticket: dict[int, set[int]] = {}
        self._due: list[tuple[datetime, int]] = []  # a heap of (not_before, id); stale entries skipped
        for name in self._listed | {self._newest}:
            for key, doc in (self._data(name).get("jobs") or {}).items():
                if doc["status"] in LIVE:
                    self._remember(int(key), doc)

    def adopt(self, hot_jobs: dict[str, Any]) -> None:
        """A read-only open of a format 2 store: its queue, from the hot file."""
        for key, doc in hot_jobs.items():
            self._remember(int(key), doc)

    # ---- reading --------------------------------------------------------------------------------

    def live(self) -> list[Job]:
        return [job_from_doc(Document(doc, doc_id=job_id)) for job_id, doc in sorted(self._live.items())]

    def all_jobs(self) -> dict[int, Job]:
        """Every job of every part (finished ones too): a tool's question, it reads every part."""
        found: dict[int, Job] = {}
        for path in sorted(self.folder.glob("*.json")):
            for key, doc in (AtomicJSONStorage(path, read_only=True).read().get("jobs") or {}).items():
                found[int(key)] = job_from_doc(Document(doc, doc_id=int(key)))
        for job_id, doc in self._live.items():  # what this process changed wins over what it read
            found[job_id] = job_from_doc(Document(doc, doc_id=job_id))
        return found

    def queued_for(self, ticket_id: int, other_than: int | None = None) -> int | None:
        ids = sorted(self._queued_of_ticket.get(ticket_id, set()) - {other_than})
        return ids[0] if ids else None

    def get(self, job_id: int) -> dict[str, Any] | None:
        return self._live.get(job_id)

    def next_due(self) -> datetime | None:
        self._drop_stale()
        return self._due[0][0] if self._due else None

    def earliest_due(self, now: datetime) -> int | None:
        """The queued job due first (then the lowest id) if it is due at ``now``."""
        self._drop_stale()
        return self._due[0][1] if self._due and self._due[0][0] <= now else None

    def _drop_stale(self) -> None:
        while self._due:
            at, job_id = self._due[0]
            doc = self._live.get(job_id)
            if doc is not None and doc["status"] == JOB_QUEUED and parse_iso(doc["not_before"]) == at:
                return
            heapq.heappop(self._due)

    def _remember(self, job_id: int, doc: dict[str, Any] | None) -> None:
        """Memory follows a job's new document (None: it left the queue's files)."""
        old = self._live.pop(job_id, None)
        if old is not None:
            self._live_in_part[part_of_job(job_id)] -= 1
            if old["status"] == JOB_QUEUED:
                self._queued_of_ticket[old["ticket_id"]].discard(job_id)
                if not self._queued_of_ticket[old["ticket_id"]]:
                    del self._queued_of_ticket[old["ticket_id"]]
        if doc is None or doc["status"] not in LIVE:
            return
        self._live[job_id] = doc
        self._live_in_part[part_of_job(job_id)] += 1
        if doc["status"] == JOB_QUEUED:
            self._queued_of_ticket.setdefault(doc["ticket_id"], set()).add(job_id)
            heapq.heappush(self._due, (parse_iso(doc["not_before"]), job_id))

    # ---- writing --------------------------------------------------------------------------------

    def add(self, ticket_id: int, source: str, now: datetime) -> int:
        job_id = self._next_id
        part = part_of_job(job_id)
        if part != self._newest:
            self._moving_on(part)
        doc = {
            "ticket_id": ticket_id,
            "source": source,
            "status": JOB_QUEUED,
            "attempts": 0,
            "created_at": iso(now),
            "not_before": iso(now),
            "last_error": None,
        }

        def write(data: dict[str, Any]) -> None:
            data.setdefault("jobs", {})[str(job_id)] = doc
            data["issued"] = {"1": {"last": job_id}}

        self._write(part, write)
        self._next_id = job_id + 1
        self._remember(job_id, doc)
        return job_id

    def update(self, changes: dict[int, dict[str, Any]]) -> None:
        """Changes to live jobs (id → fields), one write per part; a job that leaves the live
        statuses leaves memory too."""
        for part, ids in _by_part(changes).items():

            def write(data: dict[str, Any], ids: list[int] = ids) -> None:
                jobs = data.setdefault("jobs", {})
                for job_id in ids:
                    jobs[str(job_id)] = {**self._live[job_id], **changes[job_id]}

            self._write(part, write)
            for job_id in ids:
                self._remember(job_id, {**self._live[job_id], **changes[job_id]})
            self._unlist_if_drained(part)

    def remove(self, job_id: int) -> None:
        part = part_of_job(job_id)
        self._write(part, lambda data: (data.get("jobs") or {}).pop(str(job_id), None))
        self._remember(job_id, None)
        self._unlist_if_drained(part)

    # ---- files ----------------------------------------------------------------------------------

    def _data(self, name: str) -> dict[str, Any]:
        return self._open_part(name).storage.read() or {}

    def _write(self, name: str, change: Callable[[dict[str, Any]], object]) -> None:
        """One atomic write of the part (its cached data is changed, then written whole)."""
        storage = self._open_part(name).storage
        data = storage.read() or {}
        change(data)
        storage.write(data)

    def _moving_on(self, new_part: str) -> None:
        """Ids move on to a new part: the one they leave is listed if it still holds live jobs."""
        left = self._newest
        if self._live_in_part[left] > 0 and left not in self._listed:
            self._set_listed(self._listed | {left})
        self._newest = new_part

    def _unlist_if_drained(self, part: str) -> None:
        if part in self._listed and self._live_in_part[part] <= 0:
            self._set_listed(self._listed - {part})

    def _set_listed(self, parts: set[str]) -> None:
        self._change_marker(lambda marker: marker.update(live_job_parts=sorted(parts)))
        self._listed = set(parts)


def _last_issued(data: dict[str, Any]) -> int:
    issued = ((data.get("issued") or {}).get("1") or {}).get("last", 0)
    return max([int(issued), *(int(key) for key in data.get("jobs") or {})])


def _by_part(job_ids: Iterable[int]) -> dict[str, list[int]]:
    parts: dict[str, list[int]] = {}
    for job_id in sorted(job_ids):
        parts.setdefault(part_of_job(job_id), []).append(job_id)
    return parts


def migrate_format_2(
    hot_jobs: dict[str, Any], archives: Iterable[Path], next_job_id: int
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Format 2's queue (in the hot file) and week archives → the contents of each job part, and
    the parts holding live jobs. A job in both the hot file and an archive (a kill between a finish's
    two writes) is the hot copy, as format 2 read it."""
    parts: dict[str, dict[str, Any]] = {}
    for path in archives:
        for key, doc in (AtomicJSONStorage(path, read_only=True).read().get("jobs") or {}).items():
            parts.setdefault(part_of_job(int(key)), {}).setdefault("jobs", {})[key] = doc
    for key, doc in hot_jobs.items():
        parts.setdefault(part_of_job(int(key)), {}).setdefault("jobs", {})[key] = doc
    last = next_job_id - 1
    if last > 0:
        parts.setdefault(part_of_job(last), {})["issued"] = {"1": {"last": last}}
    live = sorted({part_of_job(int(key)) for key, doc in hot_jobs.items() if doc["status"] in LIVE})
    return parts, live

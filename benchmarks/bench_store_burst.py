"""The store's worst hour: thousands of tickets within one simulated hour (issue 29).

    python -m benchmarks.bench_store --burst 5000          # prints one JSON object
    python -m benchmarks.bench_store --burst 5000 --history 73000

Two shapes of one burst, each on its own store holding ``--history`` tickets first (bulk imported
as ``bench_store`` builds them):

- ``arriving``: tickets arrive in batches of 100 (the poller's page, a webhook storm) and each is
  drafted before the next batch: enqueue 100, then for each ticket claim, round, three generated
  drafts, thread, three Slack messages recorded (``add_draft_message``), finish, two votes.
- ``backlog``: the whole burst is queued before the first is drafted (a first start with
  ``poll_since`` months back): enqueue all, then claim and finish each.

Every Store call of the first and of the last 1,000 tickets is timed (and the bytes it made the
store write, which do not depend on the machine's load); the goal: the last 1,000's p99 within ×1.5
of the first 1,000's. The two windows are timed side by side, not minutes apart: one store works
through the first tickets while another, which has worked through all the others first (untimed),
works through the last ones, a batch each in turn, so a change in the machine's load touches both
alike. In ``backlog`` the claims' "first" window is the first 1,000 claims of the full queue and
"last" the final 1,000.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.bench_store import build, milliseconds_summary
from bot.store.atomic_storage import AtomicJSONStorage
from bot.store.partitioned import PartitionedStore
from core.domain import Vote

HOUR = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday morning
BATCH = 100
WINDOW = 1000  # tickets compared at the start and at the end
OPERATIONS = ("enqueue", "claim", "create_round", "save_generated", "add_draft_message", "finish", "vote")


class BytesWritten:
    """Counts the bytes of every store file written (its size after the atomic rename): a figure
    that, unlike time, does not depend on what else the machine is doing."""

    def __init__(self) -> None:
        self.total = 0
        self._write = AtomicJSONStorage.write

    def __enter__(self) -> BytesWritten:
        counter, real_write = self, self._write

        def counted(storage: AtomicJSONStorage, data: dict[str, Any]) -> None:
            real_write(storage, data)
            counter.total += storage.path.stat().st_size

        AtomicJSONStorage.write = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        AtomicJSONStorage.write = self._write  # type: ignore[method-assign]


class Timings:
    """Milliseconds and bytes written per call, by operation, in call order."""

    def __init__(self, written: BytesWritten) -> None:
        self.calls: dict[str, list[float]] = {name: [] for name in OPERATIONS}
        self.written: dict[str, list[int]] = {name: [] for name in OPERATIONS}
        self._bytes = written

    def timed(self, name: str, call: Callable[[], Any]) -> Any:
        before = self._bytes.total
        began = time.perf_counter()
        result = call()
        self.calls[name].append((time.perf_counter() - began) * 1000)
        self.written[name].append(self._bytes.total - before)
        return result


def _moment(index: int, count: int) -> datetime:
    """The index-th of ``count`` evenly spread moments of the hour."""
    return HOUR + timedelta(seconds=3600 * index / count)


def _draft_ticket(store: PartitionedStore, timings: Timings, ticket: int, at: datetime) -> None:
    job = timings.timed("claim", lambda: store.claim_next_job(at))
    assert job is not None and job.ticket_id == ticket, (job, ticket)
    record = timings.timed("create_round", lambda: store.create_round(ticket, ticket * 10, _LABELS))
    for label, _model in _LABELS:
        timings.timed(
            "save_generated",
            lambda label=label: store.save_generated(f"{record.id}{label}", "Thanks! " * 100, None),
        )
    store.save_ticket_thread(ticket, "C1", f"{at.timestamp():.6f}")
    for n, (label, _model) in enumerate(_LABELS):
        ts = f"{at.timestamp() + 0.001 * (n + 1):.6f}"
        timings.timed(
            "add_draft_message",
            lambda label=label, ts=ts: store.add_draft_message(f"{record.id}{label}", "C1", ts),
        )
    timings.timed("finish", lambda: store.finish_job(job.id))
    for rater in ("UA", "UB"):
        vote = Vote(0, f"{record.id}A", "llama-ft", rater, 4, "button", at)
        timings.timed("vote", lambda vote=vote: store.record_vote(vote))


_LABELS = (("A", "llama-ft"), ("B", "gptj-ft"), ("C", "llama"))


def arriving(store: PartitionedStore, tickets: range, timings: Timings, base: int, burst: int) -> None:
    """Batches of 100 tickets: each batch queued, then each ticket drafted (ticket ``base + i`` at
    the i-th of ``burst`` moments of the hour)."""
    for start in range(tickets.start, tickets.stop, BATCH):
        batch = range(start, min(start + BATCH, tickets.stop))
        for ticket in batch:
            at = _moment(ticket - base, burst)
            timings.timed("enqueue", lambda ticket=ticket, at=at: store.enqueue(ticket, "poll", now=at))
        for ticket in batch:
            _draft_ticket(store, timings, ticket, _moment(ticket - base, burst))


def _opened(folder: Path, history: int) -> PartitionedStore:
    path = folder / "draftdesk.json"
    build(path, history)
    return PartitionedStore(path)


def measure_burst(burst: int, history: int) -> dict[str, Any]:
    """Both shapes, the first and the last tickets of the burst timed side by side (see the module)."""
    window = min(WINDOW, burst // 2)
    result: dict[str, Any] = {"burst_tickets": burst, "history_tickets": history, "window_tickets": window}
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as scratch, BytesWritten() as written:
        folders = [
            Path(scratch) / name
            for name in ("arriving-first", "arriving-last", "backlog-first", "backlog-last")
        ]
        for folder in folders:
            folder.mkdir()
        result["arriving"] = _arriving_side_by_side(folders[0], folders[1], history, burst, window, written)
        result["backlog"] = _backlog_side_by_side(folders[2], folders[3], history, burst, window, written)
    result["goal_p99_ratio_at_most_1_5"] = all(
        result[shape]["worst_p99_ratio"] <= 1.5 for shape in ("arriving", "backlog")
    )
    return result


def _arriving_side_by_side(
    first_folder: Path, last_folder: Path, history: int, burst: int, window: int, written: BytesWritten
) -> dict[str, Any]:
    """One store drafts the burst's first ``window`` tickets, another (which has drafted all the
    others first, untimed) its last ones, a batch each in turn: both windows see the same machine."""
    base = history + 1
    first, last = _opened(first_folder, history), _opened(last_folder, history)
    began = time.perf_counter()
    arriving(last, range(base, base + burst - window), Timings(written), base, burst)
    before_s = time.perf_counter() - began
    first_timings, last_timings = Timings(written), Timings(written)
    for offset in range(0, window, BATCH):
        size = min(BATCH, window - offset)
        arriving(first, range(base + offset, base + offset + size), first_timings, base, burst)
        tail = base + burst - window + offset
        arriving(last, range(tail, tail + size), last_timings, base, burst)
    return _report(first_timings, last_timings, [first, last], [first_folder, last_folder], before_s)


def _backlog_side_by_side(
    first_folder: Path, last_folder: Path, history: int, burst: int, window: int, written: BytesWritten
) -> dict[str, Any]:
    """Enqueue: the first ``window`` tickets into an empty queue beside the last ones into a queue
    of all the others. Claim and finish: the first ``window`` of the full queue (the second store)
    beside the last ``window`` (the first store, which holds only those)."""
    base = history + 1
    first, last = _opened(first_folder, history), _opened(last_folder, history)
    began = time.perf_counter()
    for ticket in range(base, base + burst - window):
        last.enqueue(ticket, "poll", now=HOUR)
    before_s = time.perf_counter() - began
    first_timings, last_timings = Timings(written), Timings(written)
    for offset in range(window):
        first_timings.timed("enqueue", lambda o=offset: first.enqueue(base + o, "poll", now=HOUR))
        tail = base + burst - window + offset
        last_timings.timed("enqueue", lambda t=tail: last.enqueue(t, "poll", now=HOUR))
    end = HOUR + timedelta(hours=1)
    for _ in range(window):
        for timings, store in ((first_timings, last), (last_timings, first)):
            job = timings.timed("claim", lambda store=store: store.claim_next_job(end))
            timings.timed("finish", lambda store=store, job=job: store.finish_job(job.id))
    return _report(first_timings, last_timings, [first, last], [first_folder, last_folder], before_s)


def _report(
    first: Timings, last: Timings, stores: list[PartitionedStore], folders: list[Path], before_s: float
) -> dict[str, Any]:
    for store in stores:
        store.close()
    figures: dict[str, Any] = {}
    for name in OPERATIONS:
        if not first.calls[name]:
            continue
        head, tail = milliseconds_summary(first.calls[name]), milliseconds_summary(last.calls[name])
        head["max_bytes_written"] = max(first.written[name])
        tail["max_bytes_written"] = max(last.written[name])
        figures[name] = {
            "first": head,
            "last": tail,
            "p99_last_over_first": round(tail["p99_ms"] / head["p99_ms"], 2),
            "bytes_last_over_first": round(tail["max_bytes_written"] / max(1, head["max_bytes_written"]), 2),
        }
    files = [p for folder in folders for p in folder.rglob("*") if p.is_file()]
    return {
        "untimed_lead_in_s": round(before_s, 1),
        "operations": figures,
        "worst_p99_ratio": max(item["p99_last_over_first"] for item in figures.values()),
        "worst_bytes_ratio": max(item["bytes_last_over_first"] for item in figures.values()),
        "largest_file_bytes": max(p.stat().st_size for p in files),
    }

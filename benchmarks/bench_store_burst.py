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

Every Store call is timed; figures for the first and the last 1,000 tickets of each operation, and
the ratio last/first of their p99 (goal ≤ 1.5). In ``backlog`` the queue shrinks as it is drafted,
so its claim and finish are also given as first/last (the first claims face the full queue).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.bench_store import build
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

    def summary(self, per_ticket: dict[str, int], window: int) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        for name, times in self.calls.items():
            if not times:
                continue
            span = window * per_ticket.get(name, 1)
            first, last = _figures(times[:span]), _figures(times[-span:])
            written = self.written[name]
            first["max_bytes_written"] = max(written[:span])
            last["max_bytes_written"] = max(written[-span:])
            figures[name] = {
                "first": first,
                "last": last,
                "p99_last_over_first": round(last["p99_ms"] / first["p99_ms"], 2),
                "bytes_last_over_first": round(
                    last["max_bytes_written"] / max(1, first["max_bytes_written"]), 2
                ),
            }
        return figures


def _figures(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "n": len(ordered),
    }


def _moment(index: int, count: int) -> datetime:
    """The index-th of ``count`` evenly spread moments of the hour."""
    return HOUR + timedelta(seconds=3600 * index / count)


def _draft_ticket(store: PartitionedStore, timings: Timings, ticket: int, at: datetime, burst: int) -> None:
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
PER_TICKET = {"save_generated": 3, "add_draft_message": 3, "vote": 2}


def arriving(store: PartitionedStore, first_ticket: int, burst: int, written: BytesWritten) -> Timings:
    timings = Timings(written)
    for start in range(0, burst, BATCH):
        tickets = range(first_ticket + start, first_ticket + min(start + BATCH, burst))
        for ticket in tickets:
            at = _moment(ticket - first_ticket, burst)
            timings.timed("enqueue", lambda ticket=ticket, at=at: store.enqueue(ticket, "poll", now=at))
        for ticket in tickets:
            _draft_ticket(store, timings, ticket, _moment(ticket - first_ticket, burst), burst)
    return timings


def backlog(store: PartitionedStore, first_ticket: int, burst: int, written: BytesWritten) -> Timings:
    timings = Timings(written)
    for n in range(burst):
        timings.timed("enqueue", lambda n=n: store.enqueue(first_ticket + n, "poll", now=HOUR))
    end = HOUR + timedelta(hours=1)
    for _ in range(burst):
        job = timings.timed("claim", lambda: store.claim_next_job(end))
        timings.timed("finish", lambda job=job: store.finish_job(job.id))
    return timings


def measure_burst(burst: int, history: int) -> dict[str, Any]:
    window = min(WINDOW, burst // 2)
    result: dict[str, Any] = {"burst_tickets": burst, "history_tickets": history, "window_tickets": window}
    for shape in (arriving, backlog):
        folder = Path(tempfile.mkdtemp(prefix="bench-burst-"))
        try:
            path = folder / "draftdesk.json"
            build(path, history)
            store = PartitionedStore(path)
            began = time.perf_counter()
            with BytesWritten() as written:
                timings = shape(store, history + 1, burst, written)
            seconds = time.perf_counter() - began
            store.close()
            files = [p for p in folder.rglob("*") if p.is_file()]
            figures = timings.summary(PER_TICKET, window)
            if shape is backlog:
                for name in ("claim", "finish"):
                    item = figures[name]
                    item["p99_first_over_last"] = round(item["first"]["p99_ms"] / item["last"]["p99_ms"], 2)
            worst = max(
                figures[name].get("p99_first_over_last", figures[name]["p99_last_over_first"])
                if shape is backlog and name in ("claim", "finish")
                else figures[name]["p99_last_over_first"]
                for name in figures
            )
            result[shape.__name__] = {
                "seconds": round(seconds, 1),
                "operations": figures,
                "worst_p99_ratio": worst,
                "worst_bytes_ratio": max(item["bytes_last_over_first"] for item in figures.values()),
                "largest_file_bytes": max(p.stat().st_size for p in files),
                "files": len(files),
            }
        finally:
            shutil.rmtree(folder)
    result["goal_p99_ratio_at_most_1_5"] = all(
        result[s.__name__]["worst_p99_ratio"] <= 1.5 for s in (arriving, backlog)
    )
    return result

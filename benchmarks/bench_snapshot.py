"""What `draftdesk backup` costs the running bot: how long votes wait while the store is snapshotted.

    python -m benchmarks.bench_snapshot                  # a year's store (73,000 tickets)
    python -m benchmarks.bench_snapshot --tickets 5000

Builds the history of ``benchmarks.bench_store`` (200 tickets a day), then snapshots it twice while
a thread records votes one after another, side by side: every file linked under the store's lock
(one pass), and ``PartitionedStore.snapshot`` (linked first without the lock, then only what changed
under it). Reports the longest a vote waited in each, and the snapshot's own time. Prints ONE JSON
object.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.bench_store import build
from bot.store.partitioned import PartitionedStore
from core.domain import Vote
from models.machine import cpu_description


def one_pass_under_lock(store: PartitionedStore, target: Path) -> int:
    """The plain way: every file linked while writes wait."""
    target.mkdir(mode=0o700)
    with store._lock:  # the comparison needs the store's own lock
        return len(store._link_replaced(target, {}))


def while_voting(store: PartitionedStore, snapshot: Callable[[], int]) -> dict[str, Any]:
    """Runs ``snapshot`` while votes are recorded back to back; the votes' waits."""
    waits: list[float] = []
    stop = threading.Event()

    def vote() -> None:
        ticket = 1
        while not stop.is_set():
            started = time.perf_counter()
            store.record_vote(Vote(ticket, f"t{ticket}r1A", "m1", "UBENCH", 4, "button", datetime.now(UTC)))
            waits.append(time.perf_counter() - started)
            ticket = ticket % 1000 + 1

    voter = threading.Thread(target=vote)
    voter.start()
    time.sleep(0.5)  # votes before the snapshot: the baseline
    before = len(waits)
    started = time.perf_counter()
    files = snapshot()
    seconds = time.perf_counter() - started
    time.sleep(0.2)
    stop.set()
    voter.join()
    during = waits[before:]
    return {
        "files": files,
        "snapshot_seconds": round(seconds, 3),
        "votes_during": len(during),
        "vote_wait_max_ms": round(1000 * max(during), 1),
        "vote_wait_median_ms": round(1000 * statistics.median(during), 2),
        "vote_wait_median_before_ms": round(1000 * statistics.median(waits[:before]), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=73_000)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-snapshot-"))
    try:
        path = work / "store.json"
        started = time.perf_counter()
        build(path, args.tickets)
        built = time.perf_counter() - started
        store = PartitionedStore(path)
        try:
            locked = while_voting(store, lambda: one_pass_under_lock(store, work / "one-pass"))
            two_pass = while_voting(store, lambda: store.snapshot(work / "two-pass"))
        finally:
            store.close()
        result = {
            "benchmark": "store snapshot while voting",
            "date": datetime.now(UTC).isoformat(timespec="minutes"),
            "machine": cpu_description(),
            "python": platform.python_version(),
            "tickets": args.tickets,
            "build_seconds": round(built, 1),
            "one_pass_under_lock": locked,
            "snapshot": two_pass,
            "vote_wait_max_ratio": round(locked["vote_wait_max_ms"] / two_pass["vote_wait_max_ms"], 1),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

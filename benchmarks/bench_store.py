"""The store's cost per operation as history grows (the partitioned store of `draftdesk run`).

    python -m benchmarks.bench_store                      # at 1,000 and 73,000 tickets
    python -m benchmarks.bench_store --sizes 1000 5000
    python -m benchmarks.bench_store --burst 5000         # the worst hour: benchmarks.bench_store_burst

History as issue 9 measured it: 200 tickets a day, each 1 job (finished), 1 thread, 1 round, 3 drafts
of 800 characters (one Slack message each), 6 votes (3 drafts x 2 raters). The partitioned store is
built through ``PartitionedStore.import_history`` (one write per file); then every figure is taken
through the Store API. Each size runs in its own process, so its RSS is its own. Prints ONE JSON
object. (The single-file store this once compared with was removed on 2026-12-08: its figures in
docs/performance.md are history.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.reporting.stats import model_stats
from bot.store.partitioned import TICKETS_PER_PART, PartitionedStore
from core.domain import Vote
from core.ports import Store
from models.machine import cpu_description

START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
PER_DAY = 200
MODELS = ("llama-ft", "gptj-ft", "llama")
TEXT = ("Thanks for reaching out! " * 40)[:800]
CHANNEL = "C1"


def created_at(ticket: int) -> datetime:
    return START + timedelta(seconds=ticket * 86400 / PER_DAY)


def history(first: int, last: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """(table, document) of tickets first..last, in ``import_history``'s record formats."""
    for ticket in range(first, last):
        at = created_at(ticket)
        ts = at.timestamp()
        yield (
            "ticket_threads",
            {"ticket_id": ticket, "channel": CHANNEL, "ts": f"{ts:.6f}", "created_at": at.isoformat()},
        )
        round_id = f"t{ticket}r1"
        yield (
            "rounds",
            {
                "id": round_id,
                "ticket_id": ticket,
                "comment_id": ticket * 10,
                "number": 1,
                "status": "posted",
                "notices_posted": [],
                "created_at": at.isoformat(),
            },
        )
        for i, label in enumerate("ABC"):
            draft_id = f"{round_id}{label}"
            yield (
                "drafts",
                {
                    "id": draft_id,
                    "ticket_id": ticket,
                    "round_id": round_id,
                    "round_number": 1,
                    "label": label,
                    "model": MODELS[i],
                    "text": TEXT,
                    "error": None,
                    "channel": CHANNEL,
                    "slack_ts": [f"{ts + 1 + i:.6f}"],
                    "sent_to_zendesk_by": None,
                },
            )
            for rater in ("U1", "U2"):
                yield (
                    "votes",
                    {
                        "ticket_id": ticket,
                        "draft_id": draft_id,
                        "model": MODELS[i],
                        "rater": rater,
                        "score": 1 + (ticket + i) % 5,
                        "source": "button",
                        "voted_at": (at + timedelta(hours=1)).isoformat(),
                    },
                )


def build(path: Path, tickets: int) -> None:
    store = PartitionedStore(path)
    for first in range(0, tickets, TICKETS_PER_PART):
        tables: dict[str, list[dict[str, Any]]] = {
            "ticket_threads": [],
            "rounds": [],
            "drafts": [],
            "votes": [],
        }
        for table, doc in history(first, min(first + TICKETS_PER_PART, tickets)):
            tables[table].append(doc)
        store.import_history(tables["ticket_threads"], tables["rounds"], tables["drafts"], tables["votes"])
    store.close()


def timed(operation: Callable[[int], object], count: int) -> dict[str, float]:
    times = []
    for i in range(count):
        began = time.perf_counter()
        operation(i)
        times.append((time.perf_counter() - began) * 1000)
    return milliseconds_summary(times)


def milliseconds_summary(times: list[float]) -> dict[str, float]:
    """Median, p99 and count of call times in milliseconds."""
    ordered = sorted(times)
    return {
        "median_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "n": len(ordered),
    }


def seconds(operation: Callable[[], object]) -> tuple[float, object]:
    began = time.perf_counter()
    result = operation()
    return round(time.perf_counter() - began, 3), result


def operation_figures(
    store: Store, tickets: int, ops: int, extra: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """The Store API timed on a store holding ``tickets`` tickets of ``history``: vote, enqueue, claim
    (then ``extra``, given the figures so far), look-up by message, a week's and a year's report,
    the export. Every store's benchmark takes the same figures the same way."""
    rng = random.Random(9)
    now = created_at(tickets)
    recent = [f"t{t}r1{label}" for t in range(max(0, tickets - 200), tickets) for label in "ABC"]
    result: dict[str, Any] = {}
    result["record_vote"] = timed(
        lambda i: store.record_vote(
            Vote(0, rng.choice(recent), "llama", f"UB{i}", 4, "button", now + timedelta(seconds=i))
        ),
        ops,
    )
    result["enqueue"] = timed(lambda i: store.enqueue(tickets + i, "poll", now=now), ops)
    result["claim"] = timed(lambda i: store.claim_next_job(now + timedelta(seconds=1)), ops)
    if extra is not None:
        extra(result)
    probes = [rng.randrange(tickets) for _ in range(ops)]
    result["draft_by_message"] = timed(
        lambda i: store.draft_by_message(CHANNEL, f"{created_at(probes[i]).timestamp() + 2:.6f}"), ops
    )
    names = list(MODELS)
    week_s, _ = seconds(lambda: model_stats(store.votes(now - timedelta(days=7), now), names))
    year_start = now - timedelta(days=365)
    year_s, _ = seconds(lambda: model_stats(store.votes(year_start, now + timedelta(days=1)), names))
    export_s, votes = seconds(store.votes)
    result["report_week_s"] = week_s
    result["report_year_s"] = year_s
    result["export_s"] = export_s
    result["export_votes"] = len(votes)  # type: ignore[arg-type]
    return result


def measure(tickets: int, ops: int) -> dict[str, Any]:
    """The store at one size, in this process."""
    folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
    path = folder / "draftdesk.json"
    build_s, _ = seconds(lambda: build(path, tickets))
    startup_s, store = seconds(lambda: PartitionedStore(path))
    result: dict[str, Any] = {
        "store": "partitioned",
        "tickets": tickets,
        "build_s": build_s,
        "startup_s": startup_s,
    }
    result |= operation_figures(store, tickets, ops)
    store.close()
    result["files"] = sum(1 for p in folder.rglob("*") if p.is_file())
    result["bytes_on_disk"] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    result["largest_file_bytes"] = max(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    result["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    shutil.rmtree(folder)
    return result


def run_child(tickets: int, ops: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.bench_store", "--one", str(tickets), str(ops)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 73000], help="store sizes (tickets)")
    parser.add_argument("--ops", type=int, default=200, help="operations timed per figure")
    parser.add_argument(
        "--burst",
        type=int,
        metavar="TICKETS",
        help="instead: TICKETS tickets within one hour (bench_store_burst)",
    )
    parser.add_argument(
        "--history", type=int, default=1000, help="with --burst: tickets in the store before it"
    )
    parser.add_argument("--one", nargs=2, metavar=("TICKETS", "OPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.burst:
        from benchmarks.bench_store_burst import measure_burst

        report = {"cpu": {"model": cpu_description()["model"], "cores": os.cpu_count()}}
        report |= {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), "python": platform.python_version()}
        print(json.dumps(report | measure_burst(args.burst, args.history), indent=2))
        return 0
    if args.one:
        print(json.dumps(measure(int(args.one[0]), int(args.one[1]))))
        return 0
    new = {str(size): run_child(size, args.ops) for size in args.sizes}
    report: dict[str, Any] = {
        "cpu": {"model": cpu_description()["model"], "cores": os.cpu_count()},
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "partitioned": new,
    }
    if len(args.sizes) >= 2:
        small, big = new[str(min(args.sizes))], new[str(max(args.sizes))]
        report["vote_p99_ratio"] = round(big["record_vote"]["p99_ms"] / small["record_vote"]["p99_ms"], 2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

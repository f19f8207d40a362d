"""The store and HTTP benchmarks run end to end on tiny sizes: each prints one JSON object whose
correctness fields (votes stored, queue exact) hold. Their timings are not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(done.stdout)


def test_bench_store_measures_both_layouts_at_each_size():
    report = run_benchmark(
        "benchmarks.bench_store", "--sizes", "30", "60", "--old-sizes", "30", "--ops", "5", "--old-ops", "3"
    )
    assert set(report["partitioned"]) == {"30", "60"} and set(report["single_file"]) == {"30"}
    big = report["partitioned"]["60"]
    assert big["export_votes"] == 60 * 6 + 5  # the history's votes and the timed ones
    for figure in ("record_vote", "enqueue", "claim", "draft_by_message"):
        assert big[figure]["n"] == 5 and big[figure]["p99_ms"] >= big[figure]["median_ms"] > 0
    assert report["vote_p99_ratio"] > 0


def test_bench_http_stores_every_click_and_queues_each_ticket_once():
    report = run_benchmark(
        "benchmarks.bench_http", "--tickets", "30", "--clicks", "4", "--webhooks", "10", "--clients", "2"
    )
    run = report["servers"]["waitress"]
    assert run["clicks"]["statuses"] == {"200": 4} and run["clicks"]["all_votes_stored"]
    assert run["webhooks"]["statuses"] == {"200": 10}
    assert run["webhooks"]["queue_holds_exactly_the_distinct_tickets"]

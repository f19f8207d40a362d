"""bench_store_pg runs end to end on a tiny history against a real server, in a schema of its own
that it drops: its correctness fields hold; its timings are not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]


def test_bench_store_pg_measures_the_store_and_leaves_the_database_as_it_was(postgres_url):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_store_pg",
            "--url",
            postgres_url,
            "--tickets",
            "60",
            "--ops",
            "5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(done.stdout)["postgresql"]
    assert figures["export_votes"] == 60 * 6 + 5  # the history's votes and the timed ones
    for figure in ("record_vote", "enqueue", "claim", "finish", "draft_by_message"):
        assert figures[figure]["n"] == 5 and figures[figure]["p99_ms"] >= figures[figure]["median_ms"] > 0
    with psycopg.connect(postgres_url) as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench_store_%'"
        ).fetchall()
        tables = conn.execute("SELECT to_regclass('public.jobs')").fetchone()
    assert schemas == [] and tables == (None,)  # its schema dropped, nothing made outside it


def test_bench_http_replicas_stores_every_click_and_queues_each_ticket_once(postgres_url):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_http_replicas",
            "--url",
            postgres_url,
            "--tickets",
            "60",
            "--clicks",
            "4",
            "--webhooks",
            "6",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["replicas"] == 2
    assert report["clicks"]["statuses"] == {"200": 4} and report["clicks"]["all_votes_stored"]
    assert report["webhooks"]["statuses"] == {"200": 12} and report["webhooks"]["queued_each_ticket_once"]

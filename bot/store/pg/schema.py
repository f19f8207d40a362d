"""The PostgreSQL store's schema: versioned SQL files (``migrations/NNNN_name.sql``) applied in
order at open, each in its own transaction with its row in ``schema_migrations``.

Replicas starting together take one advisory lock, so each migration runs once. A database newer
than this code (a replica not yet upgraded, during a rolling upgrade) is used as it is, with a
warning: migrations only add, so the older code still finds what it reads.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg.rows import tuple_row

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x64647363  # the advisory lock key held while migrating ("ddsc")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The migrations shipped with this code, oldest first."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def migrate(conn: psycopg.Connection, upto: int | None = None) -> list[int]:
    """Brings the database to the latest schema (or to version ``upto``: tests of an upgrade); the
    versions applied now (none when current)."""
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            row[0]
            for row in conn.cursor(row_factory=tuple_row).execute("SELECT version FROM schema_migrations")
        }
        known = migrations()
        for migration in known:
            if migration.version in done or (upto is not None and migration.version > upto):
                continue
            with conn.transaction():
                conn.execute(migration.sql)  # type: ignore[arg-type]  # our own files, not user input
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            applied_now.append(migration.version)
            log.info("database schema: applied migration %04d_%s", migration.version, migration.name)
        newest = max((m.version for m in known), default=0)
        if done and max(done) > newest:
            log.warning(
                "the database schema is at version %s, newer than this draftdesk knows (%s): "
                "upgrade this replica",
                max(done),
                newest,
            )
    return applied_now


def schema_version(conn: psycopg.Connection) -> int:
    """The newest migration applied (0 for an empty database)."""
    cursor = conn.cursor(row_factory=tuple_row)
    exists = cursor.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return 0
    row = cursor.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0

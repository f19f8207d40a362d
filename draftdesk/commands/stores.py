"""Which store a command opens: the PostgreSQL database of `[storage] url` (or
DRAFTDESK_DATABASE_URL) when one is configured, else the TinyDB files at `[storage] path`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.config import Database
from core.ports import Store


def open_database(database: Database, *, pool_size: int | None = None) -> Store:
    """The PostgreSQL store, its schema brought up to date (DatabaseUnavailable, a ConnectionError,
    says in one line why it cannot be used, the password masked)."""
    from bot.store.pg.store import PostgresStore

    return PostgresStore(
        database.url,
        pool_size=pool_size or database.pool_size,
        lease=timedelta(seconds=database.lease_seconds),
    )


def open_for_reading(storage_path: Path, database: Database | None) -> Store:
    """The store for a report, an export or a listing: the database (a small pool), or the files
    read-only (FileNotFoundError, said in one line, when there are none yet)."""
    if database is not None:
        return open_database(database, pool_size=2)
    from bot.store.partitioned import open_store

    if not storage_path.exists():
        raise FileNotFoundError(
            f"no store at {storage_path}: run `draftdesk run` first or check [storage] path"
        )
    return open_store(storage_path, read_only=True)

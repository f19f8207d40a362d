"""`draftdesk store copy [--to postgresql://…]`: the TinyDB store into a PostgreSQL database, before
switching `[storage]` to `url` (``bot.store.pg.copy``: resumable, idempotent, with progress).

The files are read with the bot stopped (their writer lock is held meanwhile), and are not changed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tqdm import tqdm

from bot.config import load_store_settings, resolve_config_path
from bot.store.lock import WriterLock
from bot.store.partitioned import MigratedCopy, PartitionedStore, history_folder
from core.db_url import masked, url_problem


def register(sub: Any) -> None:
    store = sub.add_parser("store", help="the store itself: copy the TinyDB files into PostgreSQL")
    store_sub = store.add_subparsers(dest="store_command", required=True)
    copy = store_sub.add_parser(
        "copy", help="copy the TinyDB store ([storage] path) into a PostgreSQL database (bot stopped)"
    )
    copy.add_argument("--config", help="config file (default: $DRAFTDESK_CONFIG or ./config.toml)")
    copy.add_argument(
        "--to",
        metavar="URL",
        help="postgresql://user@host:5432/db (default: [storage] url or $DRAFTDESK_DATABASE_URL); "
        "a password from $PGPASSWORD or ~/.pgpass",
    )
    copy.set_defaults(func=cmd_copy)


def cmd_copy(args: argparse.Namespace) -> int:
    from bot.store.pg.copy import copy_files
    from bot.store.pg.store import PostgresStore

    settings = load_store_settings(resolve_config_path(args.config, os.environ))
    url = args.to or (settings.database.url if settings.database else "")
    if not url:
        print("draftdesk: store copy: give --to postgresql://… (or set [storage] url)", file=sys.stderr)
        return 2
    if problem := url_problem(url):
        print(f"draftdesk: store copy: --to {problem}", file=sys.stderr)
        return 2
    path = settings.storage_path
    if not path.exists():
        print(f"draftdesk: store copy: no store at {path}: check [storage] path", file=sys.stderr)
        return 2
    lock = WriterLock(path)
    lock.acquire()  # StoreInUse: the bot runs on the files; the CLI says to stop it first
    try:
        source = PartitionedStore(path, read_only=True) if PartitionedStore.is_partitioned(path) else None
        source = source or MigratedCopy.of(path)  # a first-version single file: read a migrated copy
        target = PostgresStore(url, pool_size=2)
        try:
            print(f"copying {path} into {masked(url)}", file=sys.stderr)
            with tqdm(desc="ticket and vote parts", unit="part", file=sys.stderr, disable=None) as bar:

                def progress(_: str, done: int, total: int) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                with target.connection() as conn:
                    copied = copy_files(source.path, history_folder(source.path), conn, progress)
        finally:
            target.close()
            source.close()
    finally:
        lock.release()
    print(copied.line())
    return 0

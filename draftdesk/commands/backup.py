"""`draftdesk backup --output FILE.tar.gz`: the whole store (votes, drafts, sends, the queue) as
one archive, taken while the bot runs. With a PostgreSQL store (`[storage] url`): pg_dump
(``pg_backup``).

The store is many small files, and a copy made file by file while the bot writes could hold a vote
without its draft. So the store first links every file into a snapshot folder beside it in one step
(``PartitionedStore.snapshot``: done by the running bot when it holds the store, no restart), and
the archive is written from that snapshot, however long it takes; then the snapshot goes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tarfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from bot.config import load_store_settings, resolve_config_path
from bot.store.job_actions import ActionResult
from bot.store.partitioned import PartitionedStore
from bot.store.requests import SNAPSHOT, StoreRequest, snapshot_name, wait_seconds
from core.files import replace_atomically
from draftdesk.commands.store_access import on_store

ARCHIVE_PREFIX = "draftdesk-"  # --into: draftdesk-20261127T231500Z.tar.gz, sorted by name = by time
DATED_ARCHIVE = re.compile(re.escape(ARCHIVE_PREFIX) + r"\d{8}T\d{6}Z\.tar\.gz")
DATED_DUMP = re.compile(re.escape(ARCHIVE_PREFIX) + r"\d{8}T\d{6}Z\.dump")  # PostgreSQL: pg_dump


def register(sub: Any) -> None:
    backup = sub.add_parser(
        "backup", help="the whole store (votes, drafts, sends, queue) as one .tar.gz, while the bot runs"
    )
    backup.add_argument("--config", help="config file (default: $DRAFTDESK_CONFIG or ./config.toml)")
    where = backup.add_mutually_exclusive_group(required=True)
    where.add_argument("--output", type=Path, help="the archive to write (FILE.tar.gz)")
    where.add_argument(
        "--into", type=Path, metavar="FOLDER", help=f"write {ARCHIVE_PREFIX}DATE.tar.gz into this folder"
    )
    backup.add_argument(
        "--keep", type=int, metavar="N", help="with --into: then remove all but the newest N archives there"
    )
    backup.add_argument(
        "--wait", type=wait_seconds, default=30.0, metavar="SECONDS", help="seconds to wait for a running bot"
    )
    backup.set_defaults(func=cmd_backup)


def cmd_backup(args: argparse.Namespace) -> int:
    settings = load_store_settings(resolve_config_path(args.config, os.environ))
    if settings.database is not None:
        return _backup_database(args, settings.database.url)
    store_path = settings.storage_path
    if args.keep is not None and (args.into is None or args.keep < 1):
        print("draftdesk: --keep N (N ≥ 1) goes with --into FOLDER", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output: Path = args.output or args.into / f"{ARCHIVE_PREFIX}{stamp}.tar.gz"
    if args.into is not None and not args.into.is_dir():
        print(f"draftdesk: --into: no folder {args.into}: create it first", file=sys.stderr)
        return 2
    problem = _output_problem(output, store_path)
    if problem:
        print(f"draftdesk: {problem}", file=sys.stderr)
        return 2
    # Unique, even for two backups in one second; a snapshot holds every file's old version on disk
    # while it lives, so it goes whatever happens (the bot also removes day-old ones at its start).
    snapshot = store_path.with_name(snapshot_name(store_path, f"{stamp}-{uuid.uuid4().hex[:8]}"))

    def here(store: PartitionedStore) -> ActionResult:
        return ActionResult(True, f"{store.snapshot(snapshot)} files", changed_queue=False)

    try:
        result = on_store(store_path, StoreRequest(SNAPSHOT, folder=snapshot.name), here, args.wait)
        if result is None:
            return 2
        if not result.ok:
            print(f"draftdesk: {result.message}", file=sys.stderr)
            return 2
        files, size = write_archive(snapshot, output)
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)
    print(
        f"backup of {store_path} written to {output}: {files} files, {size / 1e6:.1f} MB. To restore: stop "
        f"the bot, `draftdesk restore {output}`, start the bot."
    )
    if args.keep is not None:  # only the archives --into named (a hand-named one is the operator's)
        dated = sorted(p for p in args.into.iterdir() if DATED_ARCHIVE.fullmatch(p.name) and p != output)
        for old in dated[: max(0, len(dated) - (args.keep - 1))]:
            old.unlink()
            print(f"removed the older backup {old}")
    return 0


def _backup_database(args: argparse.Namespace, url: str) -> int:
    """PostgreSQL: pg_dump into --output, or draftdesk-DATE.dump --into a folder (--keep: the newest N)."""
    from draftdesk.commands.pg_backup import backup_database

    if args.keep is not None and (args.into is None or args.keep < 1):
        print("draftdesk: --keep N (N ≥ 1) goes with --into FOLDER", file=sys.stderr)
        return 2
    if args.into is not None and not args.into.is_dir():
        print(f"draftdesk: --into: no folder {args.into}: create it first", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output: Path = args.output or args.into / f"{ARCHIVE_PREFIX}{stamp}.dump"
    if output.is_dir() or not output.parent.is_dir():
        print(f"draftdesk: --output {output}: give a file in an existing folder", file=sys.stderr)
        return 2
    code = backup_database(url, output)
    if code == 0 and args.keep is not None:
        dated = sorted(p for p in args.into.iterdir() if DATED_DUMP.fullmatch(p.name) and p != output)
        for old in dated[: max(0, len(dated) - (args.keep - 1))]:
            old.unlink()
            print(f"removed the older backup {old}")
    return code


def _output_problem(output: Path, store_path: Path) -> str:
    if not store_path.exists():
        return f"no store at {store_path}: nothing to back up (check [storage] path)"
    if output.is_symlink():
        return f"--output {output} is a link: give the path of the file itself"
    if output.is_dir():
        return f"--output {output} is a folder: give a file name, e.g. {output / 'draftdesk-backup.tar.gz'}"
    if not output.parent.is_dir():
        return f"--output: no folder {output.parent}: create it first"
    where = output.parent.resolve()
    store_folder = store_path.parent.resolve()
    inside = [store_folder / f"{store_path.name}{suffix}" for suffix in (".d", ".requests")]
    if (where == store_folder and output.name.startswith(store_path.name)) or any(
        folder == where or folder in where.parents for folder in inside
    ):
        return f"--output {output} is one of the store's own files or folders: write the backup elsewhere"
    return ""


def write_archive(snapshot: Path, output: Path) -> tuple[int, int]:
    """The snapshot's folders and files as a gzipped tar, readable by its owner only (it holds
    customers' tickets), written whole or not at all (``replace_atomically``: a fresh temporary file,
    fsynced, renamed); (files, bytes of the archive)."""
    entries = sorted(snapshot.rglob("*"))
    files = sum(1 for path in entries if path.is_file())

    def write(handle: BinaryIO) -> None:
        with tarfile.open(fileobj=handle, mode="w:gz") as archive:
            for done, path in enumerate(entries, 1):
                archive.add(path, arcname=str(path.relative_to(snapshot)), recursive=False)
                if sys.stderr.isatty() and (done % 500 == 0 or done == len(entries)):
                    print(f"\rarchiving: {done}/{len(entries)}", end="", file=sys.stderr, flush=True)

    replace_atomically(output, write)  # mkstemp: mode 600, never through a link left there
    if sys.stderr.isatty():
        print(file=sys.stderr)
    return files, output.stat().st_size

"""`draftdesk restore FILE.tar.gz`: put a `draftdesk backup` archive back as the store.

With the bot stopped only (the store's writer lock says so). The archive is unpacked beside the
store and opened as a store before anything is moved; then the current store (its file and its
history folder) is moved aside under a dated name, never deleted, and the restored one takes its
place. Whatever goes wrong before that last step leaves the current store as it was.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from bot.config import load_store_settings, resolve_config_path
from bot.store.lock import StoreInUse, WriterLock
from bot.store.partitioned import PartitionedStore, history_folder
from draftdesk.commands.store_access import owner_problem


class RestoreError(Exception):
    """The archive cannot be restored; the message says why and what to do."""


def register(sub: Any) -> None:
    restore = sub.add_parser(
        "restore", help="put a `draftdesk backup` archive back as the store (bot stopped)"
    )
    restore.add_argument("archive", type=Path, help="the archive `draftdesk backup` wrote")
    restore.add_argument("--config", help="config file (default: $DRAFTDESK_CONFIG or ./config.toml)")
    restore.set_defaults(func=cmd_restore)


def cmd_restore(args: argparse.Namespace) -> int:
    settings = load_store_settings(resolve_config_path(args.config, os.environ))
    if settings.database is not None:  # PostgreSQL: pg_restore of a pg_dump archive
        from draftdesk.commands.pg_backup import restore_database

        return restore_database(settings.database.url, args.archive)
    store_path = settings.storage_path
    try:
        print(restore(args.archive, store_path))
    except RestoreError as exc:
        print(f"draftdesk: {exc}", file=sys.stderr)
        return 2
    return 0


def restore(archive: Path, store_path: Path) -> str:
    """Restores ``archive`` as the store at ``store_path``; what was done, in one line."""
    # The store's owner (on a new machine: the owner of its folder) restores: root's files would
    # lock the bot's user out of its own store.
    if problem := owner_problem(store_path if store_path.exists() else store_path.parent):
        raise RestoreError(problem)
    lock = WriterLock(store_path)
    try:
        lock.acquire()
    except StoreInUse as exc:
        raise RestoreError(f"{exc}: stop the bot first (`systemctl stop draftdesk`), then restore") from None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for leftover in store_path.parent.glob(f".{store_path.name}.restoring-*"):
        shutil.rmtree(leftover, ignore_errors=True)  # a restore killed before: the archive still has it
    unpacked = store_path.with_name(f".{store_path.name}.restoring-{stamp}")
    try:
        hot_name = _unpack(archive, unpacked)
        _rename_store(unpacked / hot_name, unpacked / store_path.name)
        votes = _check(unpacked / store_path.name)
        kept = store_path.with_name(f"{store_path.name}.before-restore-{stamp}")
        moved = _move_aside(store_path, kept)
        _rename_store(unpacked / store_path.name, store_path)
    finally:
        shutil.rmtree(unpacked, ignore_errors=True)
        lock.release()
    aside = f"; what it replaced is at {' and '.join(moved)}: remove it once all is well" if moved else ""
    return f"restored {archive} as {store_path}: {votes} votes{aside}. Start the bot."


def _unpack(archive: Path, into: Path) -> str:
    """Unpacks the archive's store into ``into``; the name of its main file."""
    try:
        with tarfile.open(archive) as opened:
            names = [PurePosixPath(member.name) for member in opened.getmembers()]
            hot = [n for n in names if len(n.parts) == 1 and n.suffix == ".json"]
            if len(hot) != 1 or any(n.parts[0] not in (hot[0].name, f"{hot[0].name}.d") for n in names):
                raise RestoreError(
                    f"{archive} is not an archive `draftdesk backup` wrote (its files: {names[:3]}…)"
                )
            into.mkdir(mode=0o700)
            opened.extractall(into, filter="data")  # no links out, no absolute paths, no devices
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise RestoreError(f"cannot read {archive}: {exc}") from None
    return hot[0].name


def _rename_store(source: Path, target: Path) -> None:
    """Moves a store's history folder (if any), then its main file: the main file is what makes a
    store, so a kill between the two leaves no main file beside a history (which the next restore
    moves aside), never a main file over another store's history."""
    history = history_folder(source)
    if history.exists():
        history.rename(history_folder(target))
    source.rename(target)


def _move_aside(store_path: Path, kept: Path) -> list[str]:
    """Moves whatever is at the store's place, its main file and its history folder each if it is
    there (a restore killed half-way leaves one without the other); the paths it moved them to."""
    moved = []
    for present, target in ((history_folder(store_path), history_folder(kept)), (store_path, kept)):
        if present.exists():
            present.rename(target)
            moved.append(str(target))
    return moved


def _check(path: Path) -> int:
    """Opens the unpacked store as the bot would; how many votes it holds."""
    try:
        store = PartitionedStore(path, read_only=True)
        try:
            return len(store.votes())
        finally:
            store.close()
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise RestoreError(f"the archive's store cannot be opened ({exc}): nothing was changed") from None

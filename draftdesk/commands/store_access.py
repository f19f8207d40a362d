"""Store work for a command: done in the store itself when it is free, or, while `draftdesk run`
holds it, handed to the bot (``bot.store.requests``). One line on standard error when neither can."""

from __future__ import annotations

import os
import pwd
import sys
from collections.abc import Callable
from pathlib import Path

from bot.config import load_store_settings, resolve_config_path
from bot.store.job_actions import ActionResult
from bot.store.lock import StoreInUse
from bot.store.partitioned import PartitionedStore
from bot.store.requests import NoBotAnswered, StoreRequest, ask


def configured_store_path(config: str | None) -> Path:
    """The store ``[storage] path`` names, in ``config`` or the default config file."""
    return load_store_settings(resolve_config_path(config, os.environ)).storage_path


def on_store(
    store_path: Path, request: StoreRequest, here: Callable[[PartitionedStore], ActionResult], wait: float
) -> ActionResult | None:
    """``here(store)`` with the store opened for writing, or ``request`` carried out by the running
    bot; None (the reason printed) when the bot cannot be asked or does not answer.

    Only the store's owner may: files another user wrote (root's, say) would lock the bot out of
    its own store, and its requests could not be read by the bot."""
    if problem := owner_problem(store_path):
        print(f"draftdesk: {problem}", file=sys.stderr)
        return None
    try:
        store = PartitionedStore(store_path)
    except StoreInUse as in_use:
        try:
            return ask(store_path, request, wait)
        except NoBotAnswered as exc:
            print(f"draftdesk: {in_use}, and {exc}", file=sys.stderr)
        except OSError as exc:
            print(
                f"draftdesk: cannot hand the request to the running bot ({exc}): run the command as the "
                "user the bot runs as",
                file=sys.stderr,
            )
        return None
    try:
        return here(store)
    finally:
        store.close()


def owner_problem(store_path: Path) -> str:
    """What to do when this process is not the store's owner; "" when it is."""
    owner = store_path.stat().st_uid
    if owner == os.geteuid():
        return ""
    name = _user_name(owner)
    return f"{store_path} belongs to {name}: run the command as that user (sudo -u {name} draftdesk …)"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"user {uid}"

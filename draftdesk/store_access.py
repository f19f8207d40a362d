"""Store work for a command: done in the store itself when it is free, or, while `draftdesk run`
holds it, handed to the bot (``bot.store_requests``). One line on standard error when neither can."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from bot.job_actions import ActionResult
from bot.partitioned_store import PartitionedStore
from bot.store_lock import StoreInUse
from bot.store_requests import NoBotAnswered, StoreRequest, ask


def on_store(
    store_path: Path, request: StoreRequest, here: Callable[[PartitionedStore], ActionResult], wait: float
) -> ActionResult | None:
    """``here(store)`` with the store opened for writing, or ``request`` carried out by the running
    bot; None (the reason printed) when the bot cannot be asked or does not answer."""
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

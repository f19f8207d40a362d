"""Store work handed to the running bot: `draftdesk jobs retry|drop` and `draftdesk backup` while
`draftdesk run` holds the store.

Only one process writes the store (``bot.store.lock``), and restarting the bot to retry a job or to
take a backup would reload every model (minutes on a GPU box). So the bot keeps a folder beside the
store, ``PATH.requests/``; the command leaves its request there as a file, the bot takes it within a
second, carries it out through its own store and answers in a file beside it. Whoever may write that
folder (the bot's user, or root) may change the store, as before: no port, no token.

A request is taken by renaming it. A command that gives up waiting (or is interrupted) removes its
request, and when that removal succeeds nothing will happen; a taken request is answered, unless
its command's deadline passed long before (a bot that was stopped meanwhile answers "not carried
out" at its next start). The bot touches ``serving`` in the folder every second, so a command knows
at once whether anyone will take its request.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.store.job_actions import ActionResult, perform
from core.ports import Store

log = logging.getLogger(__name__)

REQUEST, TAKEN, ANSWER, PARTIAL = ".request", ".taken", ".answer", ".partial"
SERVING = "serving"  # touched by the bot every second while it takes requests
SERVING_STALE_SECONDS = 10.0
GRACE_SECONDS = 30.0  # a request past its command's deadline by this much is dropped unanswered
ANSWER_STALE_SECONDS = 300.0  # an answer nobody came for (its command was killed) is removed
POLL_SECONDS = 1.0
MAX_WAIT_SECONDS = 3600.0
SNAPSHOT = "snapshot"  # a consistent copy of the store's files, for `draftdesk backup`


def requests_dir(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".requests")


def snapshot_name(store_path: Path, stamp: str) -> str:
    return f"{store_path.name}.snapshot-{stamp}"


def is_snapshot_name(store_path: Path, name: str) -> bool:
    """Only a new folder of this shape, beside the store, is ever made for a request."""
    return re.fullmatch(re.escape(store_path.name) + r"\.snapshot-[0-9A-Za-z-]{1,40}", name) is not None


@dataclass(frozen=True)
class StoreRequest:
    action: str  # one of bot.store.job_actions.ACTIONS, or SNAPSHOT
    job_id: int | None = None
    folder: str | None = None  # SNAPSHOT: the new folder's name, beside the store


class NoBotAnswered(Exception):
    """The request was not carried out, or its answer did not come; the message says which."""


def wait_seconds(text: str) -> float:
    """``--wait``: a number of seconds the command may wait, 0 < s <= an hour (argparse type)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds <= MAX_WAIT_SECONDS:  # NaN fails too
        raise argparse.ArgumentTypeError(f"give seconds between 0 and {MAX_WAIT_SECONDS:g}, not {text!r}")
    return seconds


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Whole or not at all: written under a fresh name nobody reads (never through a link someone
    left there), then renamed over ``path``."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}{PARTIAL}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data))
    os.replace(partial, path)


# ---- the command's side --------------------------------------------------------------------------


def ask(
    store_path: Path,
    request: StoreRequest,
    wait_seconds: float,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> ActionResult:
    """Hands ``request`` to the bot running on ``store_path`` and returns its answer. Raises
    NoBotAnswered (nothing changed, or not known) and OSError (the folder cannot be written).
    Interrupted (Ctrl-C), it withdraws the request first, unless the bot has taken it already."""
    folder = requests_dir(store_path)
    serving = folder / SERVING
    if folder.is_dir() and folder.stat().st_uid != store_path.stat().st_uid:
        raise NoBotAnswered(
            f"{folder} does not belong to the store's owner, so the bot does not take requests from it: "
            "remove that folder and restart the bot"
        )
    try:
        beat = serving.stat().st_mtime
    except FileNotFoundError:
        beat = None
    if beat is None or clock() - beat > SERVING_STALE_SECONDS:
        raise NoBotAnswered(
            "it takes no requests now (a bot still loading its models, or another command): try again "
            "in a minute, or stop it first"
        )
    name = uuid.uuid4().hex
    pending, answer = folder / f"{name}{REQUEST}", folder / f"{name}{ANSWER}"
    body = {"action": request.action, "job_id": request.job_id, "folder": request.folder}
    _write_json(pending, body | {"deadline": clock() + wait_seconds})

    def answered_within(seconds: float) -> ActionResult | None:
        deadline = monotonic() + seconds
        while True:
            if answer.exists():
                data = json.loads(answer.read_text(encoding="utf-8"))
                answer.unlink(missing_ok=True)
                return ActionResult(bool(data["ok"]), str(data["message"]))
            if monotonic() >= deadline:
                return None
            sleep(0.05)

    def withdrawn() -> bool:
        try:
            pending.unlink()  # not taken: withdrawn, so it will never be carried out
        except FileNotFoundError:  # taken meanwhile: its answer is coming
            return False
        return True

    try:
        result = answered_within(wait_seconds)
    except BaseException:  # Ctrl-C, a kill the interpreter sees: no request left behind to surprise
        if withdrawn():
            raise
        raise NoBotAnswered(
            "interrupted after the bot took the request: it is carried out all the same "
            "(its log says the outcome: journalctl -u draftdesk)"
        ) from None
    if result is not None:
        return result
    if withdrawn():
        raise NoBotAnswered(
            f"it did not take the request within {wait_seconds:g} s, so nothing changed: is it stuck? "
            "(GET /healthz, `systemctl status draftdesk`)"
        )
    result = answered_within(GRACE_SECONDS)
    if result is not None:
        return result
    raise NoBotAnswered(
        "the bot took the request but did not answer in time: it may still be at it (its log says the "
        "outcome: journalctl -u draftdesk)"
    )


# ---- the bot's side ------------------------------------------------------------------------------


class StoreRequests:
    """Carries out the requests left in the store's request folder (``serve_pending``).
    ``snapshot(folder)`` makes a consistent copy of the store in a new folder (how many files)."""

    def __init__(
        self,
        store_path: Path,
        store: Store,
        on_change: Callable[[], None],
        snapshot: Callable[[Path], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store_path = store_path
        self.folder = requests_dir(store_path)
        self.store = store
        self.on_change = on_change
        self.snapshot = snapshot
        self.clock = clock

    def open(self) -> bool:
        """Makes the folder (the bot's user only), says the bot takes requests, and clears what a
        killed process left. False (logged) when the folder is not safely the bot's own: requests
        are not served then, as anyone able to write there could plant links."""
        self.folder.mkdir(mode=0o700, exist_ok=True)
        info = self.folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            log.error(
                "%s is not a folder of the bot's user: `draftdesk jobs retry|drop` and `draftdesk backup` "
                "are not served while it runs; remove it and restart draftdesk",
                self.folder,
            )
            return False
        os.chmod(self.folder, 0o700)
        for leftover in self.folder.glob(f".*{PARTIAL}"):
            leftover.unlink(missing_ok=True)
        for leftover in self.folder.glob(f"*{TAKEN}"):
            log.warning("a request was interrupted by the last shutdown and is dropped: %s", leftover.name)
            leftover.unlink(missing_ok=True)
        for leftover in self.folder.glob(f"*{REQUEST}"):  # made for a process that is gone
            not_done = "not carried out: draftdesk restarted meanwhile; run the command again"
            _write_json(leftover.with_suffix(ANSWER), {"ok": False, "message": not_done})
            leftover.unlink(missing_ok=True)
        for snapshot in self.store_path.parent.glob(snapshot_name(self.store_path, "*")):
            if (
                is_snapshot_name(self.store_path, snapshot.name)
                and self.clock() - _modified(snapshot) > 86_400
            ):
                log.warning("removing %s, left by a `draftdesk backup` that did not finish", snapshot)
                shutil.rmtree(snapshot, ignore_errors=True)
        self._beat()
        return True

    def serve_pending(self) -> int:
        """Carries out every waiting request, oldest first; how many."""
        served = 0
        for pending in sorted(self.folder.glob(f"*{REQUEST}"), key=_modified):
            taken = pending.with_suffix(TAKEN)
            try:
                os.rename(pending, taken)
            except FileNotFoundError:  # withdrawn by its command meanwhile
                continue
            result = self._carry_out(taken)
            if result is not None:
                _write_json(pending.with_suffix(ANSWER), {"ok": result.ok, "message": result.message})
                log.info("request from the command line: %s", result.message)
                if result.ok and result.changed_queue:
                    self.on_change()
                served += 1
            taken.unlink(missing_ok=True)
        for answer in self.folder.glob(f"*{ANSWER}"):
            if self.clock() - _modified(answer) > ANSWER_STALE_SECONDS:
                answer.unlink(missing_ok=True)
        return served

    def run(self, stop: threading.Event) -> None:
        """Serves requests every second until ``stop`` is set; a failure is logged, not fatal. The
        heartbeat has a thread of its own: a long request (a year's snapshot) does not stop it."""
        if not self.open():
            return
        beating = threading.Thread(
            target=self._beat_until, args=(stop,), name="store-requests-beat", daemon=True
        )
        beating.start()
        while not stop.wait(POLL_SECONDS):
            try:
                self.serve_pending()
            except Exception:
                log.exception("could not carry out a request; trying again in a second")
        beating.join(timeout=5)
        (self.folder / SERVING).unlink(missing_ok=True)  # a command asking now is told at once

    def _beat_until(self, stop: threading.Event) -> None:
        while not stop.wait(POLL_SECONDS):
            try:
                self._beat()
            except OSError as exc:
                log.warning("could not mark the bot as taking requests: %s", exc)

    def _beat(self) -> None:
        (self.folder / SERVING).touch()

    def _carry_out(self, taken: Path) -> ActionResult | None:
        """The request's answer; None for one whose command stopped waiting long ago (dropped)."""
        try:
            data = json.loads(taken.read_text(encoding="utf-8"))
            action, job_id, folder = str(data["action"]), data.get("job_id"), data.get("folder")
            given = data.get("deadline")
            deadline = float(given) if given is not None else _modified(taken) + ANSWER_STALE_SECONDS
            if job_id is not None and (type(job_id) is not int or job_id < 0):
                raise ValueError(f"job id {job_id!r}")
            if action == SNAPSHOT and not (
                isinstance(folder, str) and is_snapshot_name(self.store_path, folder)
            ):
                raise ValueError(f"snapshot folder {folder!r}")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return ActionResult(False, f"unreadable request ({exc})", changed_queue=False)
        if self.clock() > deadline + GRACE_SECONDS:
            log.warning("a request nobody waits for any more is dropped: %s", taken.name)
            return None
        if action == SNAPSHOT:
            target = self.store_path.with_name(str(folder))
            try:
                files = self.snapshot(target)
            except FileExistsError:
                return ActionResult(
                    False, f"{target} exists already: nothing was copied", changed_queue=False
                )
            except OSError as exc:
                shutil.rmtree(target, ignore_errors=True)  # half a snapshot holds old files on disk
                return ActionResult(
                    False, f"could not copy the store into {target}: {exc}", changed_queue=False
                )
            return ActionResult(True, f"{files} files of the store linked into {target}", changed_queue=False)
        return perform(self.store, action, job_id)


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0

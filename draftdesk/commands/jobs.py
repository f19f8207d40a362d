"""`draftdesk jobs list|retry ID|retry --failed|drop ID`: the draft queue, for an operator.

`list` opens the store read-only, so it works while `draftdesk run` runs. `retry` and `drop` write:
the TinyDB store admits one writing process at a time (``bot.store.lock``), so while the bot runs
they hand the change to it (``bot.store.requests``) and print its answer. With a PostgreSQL
database (`[storage] url`) every command works on the database directly, beside the replicas.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bot.config import StoreSettings, load_store_settings, resolve_config_path
from bot.store.job_actions import DROP, IN_QUEUE, RETRY, RETRY_FAILED, ActionResult, perform
from bot.store.requests import StoreRequest, wait_seconds
from core.domain import JOB_DONE, Job
from core.ports import Store
from draftdesk.commands.store_access import on_store
from draftdesk.commands.stores import open_database, open_for_reading

WAIT_HELP = "seconds to wait for a running bot to carry it out (default 10)"


def register(sub: Any) -> None:
    jobs = sub.add_parser("jobs", help="the draft queue: list jobs, retry or drop them")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = jobs_sub.add_parser("list", help="the jobs in the queue: queued, running and failed")
    listing.add_argument("--config", help="config file (default: $DRAFTDESK_CONFIG or ./config.toml)")
    listing.add_argument(
        "--status",
        choices=(*IN_QUEUE, JOB_DONE),
        help="only jobs in this state (done: read from the archive)",
    )
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.set_defaults(func=cmd_list)
    retry = jobs_sub.add_parser(
        "retry", help="put a failed (or waiting) job back in the queue, due now, its attempts reset"
    )
    retry.add_argument("--config", help="config file (default: $DRAFTDESK_CONFIG or ./config.toml)")
    retry.add_argument("job_id", nargs="?", type=int, help="the job's id (`draftdesk jobs list`)")
    retry.add_argument("--failed", action="store_true", help="every failed job")
    retry.add_argument("--wait", type=wait_seconds, default=10.0, metavar="SECONDS", help=WAIT_HELP)
    retry.set_defaults(func=cmd_retry)
    drop = jobs_sub.add_parser("drop", help="take a queued or failed job out of the queue")
    drop.add_argument("--config", help="config file (default: $DRAFTDESK_CONFIG or ./config.toml)")
    drop.add_argument("job_id", type=int, help="the job's id (`draftdesk jobs list`)")
    drop.add_argument("--wait", type=wait_seconds, default=10.0, metavar="SECONDS", help=WAIT_HELP)
    drop.set_defaults(func=cmd_drop)


def _settings(args: argparse.Namespace) -> StoreSettings:
    return load_store_settings(resolve_config_path(args.config, os.environ))


def _storage_path(settings: StoreSettings) -> Path:
    path = settings.storage_path
    if not path.exists():
        raise FileNotFoundError(f"no store at {path}: run `draftdesk run` first or check [storage] path")
    return path


def cmd_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = open_for_reading(settings.storage_path, settings.database)
    try:
        statuses = (args.status,) if args.status else IN_QUEUE
        jobs = sorted((job for status in statuses for job in store.jobs(status)), key=lambda job: job.id)
        claims = _claims(store)
    finally:
        store.close()
    if args.format == "json":
        for job in jobs:
            print(json.dumps({**job_row(job), **claims.get(job.id, {})}))
        return 0
    print(render_table(jobs))
    for job_id, claim in sorted(claims.items()):  # replicas on PostgreSQL: who runs what
        print(
            f"job {job_id} runs on replica {claim['replica']} (its claim lasts until {claim['lease_until']})"
        )
    return 0


def _claims(store: Store) -> dict[int, dict[str, str]]:
    """The replica running each running job, and until when its lease lasts (PostgreSQL only)."""
    job_claims = getattr(store, "job_claims", None)
    if job_claims is None:
        return {}
    return {
        job_id: {
            "replica": replica or "?",
            "lease_until": lease.isoformat(timespec="seconds") if lease else "?",
        }
        for job_id, replica, lease in job_claims()
    }


def job_row(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "ticket_id": job.ticket_id,
        "status": job.status,
        "attempts": job.attempts,
        "source": job.source,
        "queued_at": job.created_at.isoformat(timespec="seconds"),
        "due_at": job.not_before.isoformat(timespec="seconds"),
        "last_error": job.last_error,
    }


def render_table(jobs: list[Job]) -> str:
    if not jobs:
        return "no jobs"
    header = ("id", "ticket", "status", "tries", "source", "queued (UTC)", "due (UTC)", "last error")
    rows = [
        (
            str(job.id),
            str(job.ticket_id),
            job.status,
            str(job.attempts),
            job.source,
            job.created_at.strftime("%Y-%m-%d %H:%M"),
            job.not_before.strftime("%Y-%m-%d %H:%M"),
            _short(job.last_error or ""),
        )
        for job in jobs
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in (header, *rows)
    ]
    return "\n".join(line.rstrip() for line in lines)


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cmd_retry(args: argparse.Namespace) -> int:
    if (args.job_id is None) == (not args.failed):
        print("draftdesk: give a job id or --failed (not both)", file=sys.stderr)
        return 2
    return _change(args, StoreRequest(RETRY_FAILED) if args.failed else StoreRequest(RETRY, args.job_id))


def cmd_drop(args: argparse.Namespace) -> int:
    return _change(args, StoreRequest(DROP, args.job_id))


def _change(args: argparse.Namespace, request: StoreRequest) -> int:
    """Changes the queue in the store itself or, while `draftdesk run` holds it, through the bot."""

    def here(store: Store) -> ActionResult:
        return perform(store, request.action, request.job_id)

    settings = _settings(args)
    if settings.database is not None:  # the database takes writes from any process
        store = open_database(settings.database, pool_size=2)
        try:
            result: ActionResult | None = here(store)
        finally:
            store.close()
    else:
        result = on_store(_storage_path(settings), request, here, args.wait)
    if result is None:
        return 2
    if not result.ok:
        print(f"draftdesk: {result.message}", file=sys.stderr)
        return 2
    print(result.message)
    return 0

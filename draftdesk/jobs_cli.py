"""`draftdesk jobs list|retry ID|retry --failed|drop ID`: the draft queue, for an operator.

`list` opens the store read-only, so it works while `draftdesk run` runs. `retry` and `drop` write:
the store admits one writing process at a time (``bot.store_lock``), so while the bot runs they
stop with one line saying so, and nothing changes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bot.config import load_store_settings, resolve_config_path
from core.domain import JOB_DONE, JOB_FAILED, JOB_QUEUED, JOB_RUNNING, Job
from core.ports import Store

IN_QUEUE = (JOB_QUEUED, JOB_RUNNING, JOB_FAILED)


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
    retry.set_defaults(func=cmd_retry)
    drop = jobs_sub.add_parser("drop", help="take a queued or failed job out of the queue")
    drop.add_argument("--config", help="config file (default: $DRAFTDESK_CONFIG or ./config.toml)")
    drop.add_argument("job_id", type=int, help="the job's id (`draftdesk jobs list`)")
    drop.set_defaults(func=cmd_drop)


def _storage_path(args: argparse.Namespace) -> Path:
    path = load_store_settings(resolve_config_path(args.config, os.environ)).storage_path
    if not path.exists():
        raise FileNotFoundError(f"no store at {path}: run `draftdesk run` first or check [storage] path")
    return path


def _writable(args: argparse.Namespace) -> Store:
    from bot.partitioned_store import PartitionedStore

    return PartitionedStore(_storage_path(args))  # StoreInUse while the bot runs


def cmd_list(args: argparse.Namespace) -> int:
    from bot.partitioned_store import open_store

    store = open_store(_storage_path(args), read_only=True)
    try:
        statuses = (args.status,) if args.status else IN_QUEUE
        jobs = sorted((job for status in statuses for job in store.jobs(status)), key=lambda job: job.id)
    finally:
        store.close()
    if args.format == "json":
        for job in jobs:
            print(json.dumps(job_row(job)))
        return 0
    print(render_table(jobs))
    return 0


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
    store = _writable(args)
    try:
        if args.failed:
            failed = store.jobs(JOB_FAILED)
            for job in failed:
                store.requeue_job(job.id)
            print(f"{len(failed)} failed job(s) back in the queue")
            return 0
        known = {job.id: job for status in IN_QUEUE for job in store.jobs(status)}
        job = known.get(args.job_id)
        if job is None or job.status == JOB_RUNNING:
            why = "is running" if job else "is not in the queue (finished, dropped, or a wrong id)"
            print(f"draftdesk: job {args.job_id} {why}", file=sys.stderr)
            return 2
        queued = store.requeue_job(job.id)
        assert queued is not None  # queued or failed, and no other process writes
        joined = "" if queued.id == job.id else f", joined job {queued.id} already queued for the ticket"
        print(f"job {job.id} (ticket {job.ticket_id}) back in the queue, due now{joined}")
        return 0
    finally:
        store.close()


def cmd_drop(args: argparse.Namespace) -> int:
    store = _writable(args)
    try:
        job = next((j for status in IN_QUEUE for j in store.jobs(status) if j.id == args.job_id), None)
        if job is None or not store.drop_job(job.id):
            why = "is running" if job else "is not in the queue (finished, dropped, or a wrong id)"
            print(f"draftdesk: job {args.job_id} {why}", file=sys.stderr)
            return 2
        print(f"job {job.id} (ticket {job.ticket_id}, {job.status}) dropped")
        return 0
    finally:
        store.close()

"""GET /healthz: Slack, Zendesk, the models, the worker's heartbeat and the queue, in one JSON answer.

Upstream checks are slow and rate-limited, so each runs in its own thread at most every
``check_interval_seconds``, and a request waits at most ``check_timeout_seconds`` for one in
progress before answering with the last result: a hung upstream never hangs the health check.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.config import HealthSettings
from bot.operations.metrics import oldest_queued_age
from core.domain import JOB_FAILED, JOB_QUEUED, JOB_RUNNING, Job, utcnow

log = logging.getLogger(__name__)

# A check answers (healthy, what it found); raising counts as unhealthy.
Check = Callable[[], tuple[bool, str]]


@dataclass(frozen=True)
class Finding:
    ok: bool
    detail: str
    at: float  # monotonic time of the check


class CachedCheck:
    """``check`` run at most every ``interval`` seconds, in the background; never waited on for
    longer than ``timeout``."""

    def __init__(
        self,
        name: str,
        check: Check,
        interval: float,
        timeout: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._check = check
        self._interval = interval
        self._timeout = timeout
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last: Finding | None = None
        self._running: threading.Event | None = None

    def result(self) -> dict:
        with self._lock:
            last = self._last
            stale = last is None or self._monotonic() - last.at >= self._interval
            if stale and self._running is None:
                self._running = threading.Event()
                threading.Thread(
                    target=self._run, args=(self._running,), name=f"health-{self.name}", daemon=True
                ).start()
            running = self._running
        if stale and running is not None:
            running.wait(self._timeout)
        with self._lock:
            last = self._last
        if last is None:
            return {"ok": None, "detail": f"first check still running after {self._timeout:g}s"}
        return {
            "ok": last.ok,
            "detail": last.detail,
            "checked_seconds_ago": round(self._monotonic() - last.at, 1),
        }

    def _run(self, done: threading.Event) -> None:
        try:
            ok, detail = self._check()
        except Exception as exc:  # a check reports, it never takes the health endpoint down
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._last = Finding(ok, detail, self._monotonic())
            self._running = None
        done.set()
        if not ok:
            log.warning("health check %s: %s", self.name, detail)


class HealthService:
    """The answer of GET /healthz: ``ok`` false (503) when any part is degraded."""

    def __init__(
        self,
        settings: HealthSettings,
        upstream: dict[str, Check],
        jobs: Callable[[], list[Job]],
        worker_beat_age: Callable[[], float],
        worker_alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings = settings
        self.checks = [
            CachedCheck(name, check, settings.check_interval_seconds, settings.check_timeout_seconds)
            for name, check in upstream.items()
        ]
        self._jobs = jobs
        self._worker_beat_age = worker_beat_age
        self._worker_alive = worker_alive

    def report(self) -> dict:
        parts = {check.name: check.result() for check in self.checks}
        parts["worker"] = self._worker()
        parts["queue"], counts = self._queue()
        problems = [f"{name}: {part['detail']}" for name, part in parts.items() if part["ok"] is False]
        return {"ok": not problems, "problems": problems, **counts, "checks": parts}

    def _worker(self) -> dict:
        age = round(self._worker_beat_age(), 1)
        limit = self.settings.worker_stale_seconds
        if not self._worker_alive():
            return {
                "ok": False,
                "detail": "the worker thread has stopped: restart draftdesk",
                "heartbeat_age_seconds": age,
            }
        if age > limit:
            detail = f"no heartbeat for {age:g}s (limit {limit:g}s): drafting may be stuck"
            return {"ok": False, "detail": detail, "heartbeat_age_seconds": age}
        return {"ok": True, "detail": f"last heartbeat {age:g}s ago", "heartbeat_age_seconds": age}

    def _queue(self) -> tuple[dict, dict]:
        jobs = self._jobs()
        counts = {
            "queued_jobs": sum(job.status == JOB_QUEUED for job in jobs),
            "running_jobs": sum(job.status == JOB_RUNNING for job in jobs),
            "failed_jobs": sum(job.status == JOB_FAILED for job in jobs),
        }
        age = oldest_queued_age(jobs, utcnow())
        limit = self.settings.queue_stale_seconds
        part: dict = {"oldest_queued_age_seconds": None if age is None else round(age, 1)}
        if age is not None and age > limit:
            part |= {"ok": False, "detail": f"the oldest queued job has waited {age:.0f}s (limit {limit:g}s)"}
        else:
            waiting = "nothing queued" if age is None else f"oldest job waiting {age:.0f}s"
            part |= {"ok": True, "detail": waiting}
        failed = counts["failed_jobs"]
        if failed:  # not degraded (the bot drafts on), but someone should look
            part["detail"] += (
                f"; {failed} job{'s' if failed != 1 else ''} failed for good: `draftdesk jobs list "
                "--status failed`, then `draftdesk jobs retry --failed` once the cause is fixed"
            )
        return part, counts

"""`draftdesk run`'s drafting pipeline: one stage per upstream, so no upstream can stall the others.

    queue (store) ─▶ fetch stage ─▶ draft stage ─▶ post stage ─▶ done / retried
                     Zendesk,        the models,    Slack,
                     `fetch_threads` one thread,    `post_threads`
                     threads         batched

A ticket leaves each stage as soon as that stage is done with it: a Zendesk 429 or outage holds
only the tickets still to be read (the others are drafted and posted meanwhile), a Slack 429 only
the tickets waiting to be posted (the model keeps drafting), and the draft stage batches whatever
is ready. Each upstream's ``Retry-After`` is honoured twice: its client waits it out per request,
and when the client gives up, that stage pauses for it (`UpstreamGate`) and the ticket's job is
retried no sooner. Every step is recorded in the store, so a job cut off anywhere (kill -9
included) resumes from the queue after a restart. Two jobs of one ticket are never in flight at
once: a later one waits for the first.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

from bot.drafting.worker import PreparedRound, Worker, retry_after
from core.domain import Job

log = logging.getLogger(__name__)

_POLL = 0.2  # how often an idle stage thread checks for shutdown


class UpstreamGate:
    """Closed for a while after an upstream asked us to wait (its ``Retry-After``): the stage that
    uses that upstream waits at the gate; the other stages go on."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self._open_at = 0.0
        self._lock = threading.Lock()

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._open_at = max(self._open_at, self._clock() + seconds)
        log.warning("%s asked to wait %.0fs: its stage pauses", self.name, seconds)

    def remaining(self) -> float:
        """Seconds until the gate opens; 0 when open."""
        with self._lock:
            return max(0.0, self._open_at - self._clock())

    def wait(self, stop: threading.Event) -> bool:
        """Sleeps until the gate is open; False if ``stop`` was set meanwhile."""
        while not stop.is_set():
            remaining = self.remaining()
            if remaining <= 0:
                return True
            stop.wait(min(remaining, _POLL))
        return False


class Pipeline:
    """Runs the `Worker`'s steps as concurrent stages until ``stop`` is set (see the module doc)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.settings = worker.settings
        self.zendesk_gate = UpstreamGate("Zendesk")
        self.slack_gate = UpstreamGate("Slack")
        self._lock = threading.Condition()
        self._in_flight: dict[int, Job] = {}  # ticket id → its job in a stage
        self._held: dict[int, deque[Job]] = {}  # later jobs of a ticket in flight
        self._fetching = 0  # jobs queued for or in the fetch stage
        self._ready: list[tuple[Job, PreparedRound]] = []  # prepared, waiting for the draft stage
        self._fetch_queue: queue.Queue[Job] = queue.Queue()
        self._post_queue: queue.Queue[tuple[Job, PreparedRound]] = queue.Queue()
        self._stop = threading.Event()

    @property
    def capacity(self) -> int:
        """Jobs in flight at most: enough to keep every fetch thread busy and a batch waiting."""
        return self.settings.fetch_threads + 2 * self.settings.batch_tickets

    def run(self, stop: threading.Event, idle_wait: float = 5.0) -> None:
        """Claims due jobs and feeds the stages until ``stop``; then lets each stage finish the item
        in hand (a few seconds at most; what is cut off resumes from the queue on the next start)."""
        self._stop = stop
        threads = [
            *(self._thread(self._fetch_loop, f"fetch-{i}") for i in range(self.settings.fetch_threads)),
            self._thread(self._draft_loop, "draft"),
            *(self._thread(self._post_loop, f"post-{i}") for i in range(self.settings.post_threads)),
        ]
        while not stop.is_set():
            try:
                claimed = self._dispatch()
            except Exception:  # the store itself failed: log and keep the loop alive
                log.exception("worker loop error")
                claimed = 0
            if not claimed:
                self.worker.wake.wait(self.worker.seconds_until_due(idle_wait))
                self.worker.wake.clear()
        with self._lock:
            self._lock.notify_all()
        for thread in threads:
            thread.join(timeout=10)

    # ---- the dispatcher: the store's queue → the fetch stage ------------------------------------

    def _dispatch(self) -> int:
        claimed = 0
        while True:
            with self._lock:
                if len(self._in_flight) >= self.capacity:
                    return claimed
            job = self.worker.store.claim_next_job(self.worker.clock())
            if job is None:
                return claimed
            claimed += 1
            with self._lock:
                if job.ticket_id in self._in_flight:
                    self._held.setdefault(job.ticket_id, deque()).append(job)
                    continue
                self._start(job)

    def _start(self, job: Job) -> None:
        """Under the lock: the job enters the fetch stage."""
        self._in_flight[job.ticket_id] = job
        self._fetching += 1
        self._fetch_queue.put(job)

    def _finish(self, job: Job, outcome: str | None = None, error: Exception | None = None) -> None:
        """Record the job's outcome; a held job of the same ticket goes next."""
        try:
            if error is None:
                self.worker.done(job, outcome or "done")
            else:
                self.worker.failed(job, error)
        except Exception:
            log.exception("could not record the outcome of job %s (ticket %s)", job.id, job.ticket_id)
        with self._lock:
            self._in_flight.pop(job.ticket_id, None)
            held = self._held.get(job.ticket_id)
            if held:
                self._start(held.popleft())
                if not held:
                    del self._held[job.ticket_id]
            self._lock.notify_all()
        self.worker.wake.set()  # room for another job

    # ---- the stages ---------------------------------------------------------------------------

    def _thread(self, loop: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=self._guarded, args=(loop,), name=f"worker-{name}", daemon=True)
        thread.start()
        return thread

    def _guarded(self, loop: Callable[[], None]) -> None:
        while not self._stop.is_set():
            try:
                loop()
            except Exception:  # a bug in a stage must not end the stage
                log.exception("worker stage error")

    def _fetch_loop(self) -> None:
        """Zendesk: read the ticket, record the round, build the prompts."""
        try:
            job = self._fetch_queue.get(timeout=_POLL)
        except queue.Empty:
            return
        prepared: PreparedRound | str | None = None
        try:
            if not self.zendesk_gate.wait(self._stop):
                return
            prepared = self.worker.processor.prepare(job.ticket_id)
        except Exception as exc:
            self._pause_upstream(self.zendesk_gate, exc)
            self._finish(job, error=exc)
        finally:
            with self._lock:
                self._fetching -= 1
                if isinstance(prepared, PreparedRound) and prepared.prompts:
                    self._ready.append((job, prepared))
                self._lock.notify_all()
        if isinstance(prepared, str):
            self._finish(job, outcome=prepared)
        elif isinstance(prepared, PreparedRound) and not prepared.prompts:
            # Nothing to generate: drafted before an interruption, or no prompt could be built.
            try:
                self.worker.processor.record_drafts(prepared, [], self.worker.final_attempt(job))
            except Exception as exc:
                self._finish(job, error=exc)
            else:
                self._post_queue.put((job, prepared))

    def _draft_loop(self) -> None:
        """The models: whatever is ready, up to ``batch_tickets`` tickets in one batch."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._ready or self._stop.is_set(), timeout=_POLL):
                return
            deadline = time.monotonic() + self.settings.batch_wait_seconds
            while (
                len(self._ready) < self.settings.batch_tickets
                and self._fetching > 0
                and not self._stop.is_set()
                and (remaining := deadline - time.monotonic()) > 0
            ):
                self._lock.wait(remaining)  # a short batch waits briefly for tickets being read
            batch = self._ready[: self.settings.batch_tickets]
            del self._ready[: len(batch)]
        if not batch:
            return
        results = self.worker.generate([prepared for _, prepared in batch])
        for (job, prepared), drafts in zip(batch, results, strict=True):
            try:
                self.worker.processor.record_drafts(prepared, drafts, self.worker.final_attempt(job))
            except Exception as exc:
                self._finish(job, error=exc)
            else:
                self._post_queue.put((job, prepared))

    def _post_loop(self) -> None:
        """Slack: the parent message, notices and drafts of one ticket, in order."""
        try:
            job, prepared = self._post_queue.get(timeout=_POLL)
        except queue.Empty:
            return
        if not self.slack_gate.wait(self._stop):
            return
        try:
            outcome = self.worker.processor.post(prepared)
        except Exception as exc:
            self._pause_upstream(self.slack_gate, exc)
            self._finish(job, error=exc)
        else:
            self._finish(job, outcome=outcome)

    @staticmethod
    def _pause_upstream(gate: UpstreamGate, exc: Exception) -> None:
        asked = retry_after(exc)
        if asked:
            gate.hold(asked)

"""Turns a queued ticket into a Slack thread of blind drafts, one recorded step at a time.

Each step (parent message, label assignment, generation, every Slack message) is written to
the store as soon as it is done, so a job interrupted anywhere resumes without posting twice.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from bot.blocks import draft_message, model_failure_notice, new_round_notice, ticket_parent_message
from bot.config import WorkerSettings
from bot.domain import DRAFT_LABELS, Comment, DraftResult, Ticket
from bot.prompt import build_prompt
from bot.store import Job, Store, utcnow
from integrations.slack import SlackPoster
from integrations.zendesk import TicketNotFound

log = logging.getLogger(__name__)

SKIPPED_STATUSES = frozenset({"solved", "closed", "deleted"})


class DraftBackend(Protocol):
    """What the worker needs from a model runtime: local engine, remote server, or a test double."""

    def count_tokens(self, model_name: str, text: str) -> int: ...

    def context_limit(self, model_name: str) -> int: ...

    def generate(self, prompts: Mapping[str, str]) -> list[DraftResult]: ...


class TicketSource(Protocol):
    def fetch_ticket(self, ticket_id: int) -> Ticket: ...


class AllModelsFailed(RuntimeError):
    pass


def question_comment(ticket: Ticket) -> Comment | None:
    """The message to answer: the requester's newest public comment, else the first public one.

    An agent may open a ticket on a customer's behalf, so the first public comment is the
    question until the requester writes. Agent replies never change this, so they never
    start a new round.
    """
    latest = ticket.latest_requester_comment
    if latest is not None:
        return latest
    return next((c for c in ticket.comments if c.public), None)


class TicketProcessor:
    def __init__(
        self,
        store: Store,
        zendesk: TicketSource,
        poster: SlackPoster,
        backend: DraftBackend,
        model_names: Sequence[str],
        channel: str,
        product_name: str = "our product",
        rng: random.Random | None = None,
    ) -> None:
        if not model_names:
            raise ValueError("at least one model is needed")
        if len(model_names) > len(DRAFT_LABELS):
            raise ValueError(f"at most {len(DRAFT_LABELS)} models")
        self.store = store
        self.zendesk = zendesk
        self.poster = poster
        self.backend = backend
        self.model_names = list(model_names)
        self.channel = channel
        self.product_name = product_name
        self.rng = rng or random.SystemRandom()

    def process(self, ticket_id: int, final_attempt: bool = False) -> str:
        ticket = self.zendesk.fetch_ticket(ticket_id)
        if ticket.status in SKIPPED_STATUSES:
            return f"skipped: ticket is {ticket.status}"
        question = question_comment(ticket)
        if question is None:
            return "skipped: no public message to answer"
        existing = self.store.round_for(ticket.id, question.id)
        if existing and existing["status"] == "posted":
            return "skipped: this message already has drafts"

        channel, thread_ts = self._ensure_thread(ticket)
        round_doc = existing or self.store.create_round(ticket.id, question.id, self._blind_assignment())
        round_id = round_doc["id"]
        if not self.store.draft_generated(round_id):
            self._generate(ticket, round_id, final_attempt)

        posted = set(round_doc.get("notices_posted", []))
        drafts = self.store.drafts_for_round(round_id)
        if round_doc["number"] > 1 and "new_round" not in posted:
            text, blocks = new_round_notice(round_doc["number"])
            self.poster.post_in_thread(channel, thread_ts, text, blocks)
            self.store.mark_notice_posted(round_id, "new_round")
        failed = [d for d in drafts if d.text is None]
        if failed and "failures" not in posted:
            text, blocks = model_failure_notice(len(failed), len(drafts))
            self.poster.post_in_thread(channel, thread_ts, text, blocks)
            self.store.mark_notice_posted(round_id, "failures")
        for draft in drafts:
            if draft.text is None:
                continue
            messages = draft_message(draft.label, draft.text, draft.id, rated_count=0)
            for index, (text, blocks) in enumerate(messages):
                if index < len(draft.slack_ts):
                    continue  # posted before an interruption
                ts = self.poster.post_in_thread(channel, thread_ts, text, blocks)
                self.store.add_draft_message(draft.id, channel, ts)
        self.store.update_round(round_id, status="posted")
        ok = len(drafts) - len(failed)
        return f"posted {ok} of {len(drafts)} drafts (round {round_doc['number']})"

    def _ensure_thread(self, ticket: Ticket) -> tuple[str, str]:
        thread = self.store.ticket_thread(ticket.id)
        if thread is not None:
            return thread
        text, blocks = ticket_parent_message(ticket)
        ts = self.poster.post_parent(self.channel, text, blocks)
        self.store.save_ticket_thread(ticket.id, self.channel, ts)
        return self.channel, ts

    def _blind_assignment(self) -> list[tuple[str, str]]:
        shuffled = list(self.model_names)
        self.rng.shuffle(shuffled)
        return list(zip(DRAFT_LABELS, shuffled, strict=False))

    def _generate(self, ticket: Ticket, round_id: str, final_attempt: bool) -> None:
        pending = [d for d in self.store.drafts_for_round(round_id) if d.text is None and d.error is None]
        prompts = {}
        for draft in pending:
            prompts[draft.model] = build_prompt(
                ticket,
                count_tokens=lambda text, model=draft.model: self.backend.count_tokens(model, text),
                max_tokens=self.backend.context_limit(draft.model),
                product_name=self.product_name,
            )
        try:
            results = {r.model: r for r in self.backend.generate(prompts)}
        except Exception as exc:  # the whole runtime failed: every draft is missing
            log.exception("draft generation failed for ticket %s", ticket.id)
            results = {
                model: DraftResult(model, None, error=f"{type(exc).__name__}: {exc}") for model in prompts
            }
        if not any(r.ok for r in results.values()) and not final_attempt:
            errors = "; ".join(f"{m}: {r.error or 'empty draft'}" for m, r in results.items())
            raise AllModelsFailed(f"no model produced a draft ({errors})")
        for draft in pending:
            result = results.get(draft.model) or DraftResult(draft.model, None, error="no result returned")
            if result.ok:
                self.store.save_generated(draft.id, result.text, None)
            else:
                log.warning("model %s failed on ticket %s: %s", draft.model, ticket.id, result.error)
                self.store.save_generated(draft.id, None, result.error or "empty draft")


class Worker:
    """Claims jobs from the store's queue and runs them, retrying with exponential backoff."""

    def __init__(
        self,
        store: Store,
        processor: TicketProcessor,
        settings: WorkerSettings,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.processor = processor
        self.settings = settings
        self.clock = clock
        self.wake = threading.Event()

    def run_once(self) -> Job | None:
        """Runs the next due job, if any. Returns it (as claimed) or None."""
        job = self.store.claim_next_job(self.clock())
        if job is None:
            return None
        final = job.attempts >= self.settings.max_attempts
        try:
            outcome = self.processor.process(job.ticket_id, final_attempt=final)
        except TicketNotFound as exc:
            log.warning("job %s: ticket %s not found, dropped: %s", job.id, job.ticket_id, exc)
            self.store.fail_job(job.id, f"ticket not found: {exc}")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if final:
                log.error(
                    "job %s (ticket %s) failed for good after %s attempts: %s",
                    job.id,
                    job.ticket_id,
                    job.attempts,
                    error,
                )
                self.store.fail_job(job.id, error)
            else:
                delay = self.settings.retry_base_seconds * 2 ** (job.attempts - 1)
                log.warning(
                    "job %s (ticket %s) attempt %s failed, retrying in %.0fs: %s",
                    job.id,
                    job.ticket_id,
                    job.attempts,
                    delay,
                    error,
                )
                self.store.retry_job(job.id, error, self.clock() + timedelta(seconds=delay))
        else:
            log.info("ticket %s: %s", job.ticket_id, outcome)
            self.store.finish_job(job.id)
        return job

    def run_until_idle(self, limit: int = 10_000) -> int:
        """Runs due jobs until none is due (tests, demo). Returns how many ran."""
        count = 0
        while count < limit and self.run_once() is not None:
            count += 1
        return count

    def run_forever(self, stop: threading.Event, idle_wait: float = 5.0) -> None:
        while not stop.is_set():
            try:
                ran = self.run_once()
            except Exception:  # the store itself failed: log and keep the loop alive
                log.exception("worker loop error")
                ran = None
            if ran is None:
                self.wake.wait(self._wait_seconds(idle_wait))
                self.wake.clear()

    def _wait_seconds(self, idle_wait: float) -> float:
        due = self.store.next_job_due()
        if due is None:
            return idle_wait
        return max(0.05, min(idle_wait, (due - self.clock()).total_seconds()))

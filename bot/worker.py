"""Turns a queued ticket into a Slack thread of blind drafts, one recorded step at a time.

Each step (parent message, label assignment, generation, every Slack message) is written to
the store as soon as it is done, so a job interrupted anywhere resumes without posting twice.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.blocks import draft_message, model_failure_notice, new_round_notice, ticket_parent_message
from bot.config import WorkerSettings
from core.domain import (
    DRAFT_LABELS,
    FINISHED_STATUSES,
    Comment,
    DraftResult,
    Job,
    RoundRecord,
    Ticket,
    utcnow,
)
from core.placeholders import KnownValues, fill_placeholders
from core.ports import ChatPoster, DraftBackend, GatewayError, Store, TicketNotFound, TicketSource
from core.prompt import build_prompt

log = logging.getLogger(__name__)


class AllModelsFailed(RuntimeError):
    pass


class SourceFinder(Protocol):
    """Help-centre sources for a ticket (`bot.grounding`): links to show, passages for a prompt."""

    def links(self, ticket: Ticket) -> list[tuple[str, str]]:
        """(title, url) of the articles that fit the ticket best."""
        ...

    def passages(self, model: str, ticket: Ticket, count_tokens: Callable[[str], int]) -> list[str]:
        """The passages for ``model``'s prompt: none for a model without grounding."""
        ...


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


@dataclass
class PreparedRound:
    """A ticket whose thread and blind labels are recorded, waiting for (some of) its drafts."""

    ticket: Ticket
    round: RoundRecord
    channel: str
    thread_ts: str
    prompts: dict[str, str] = field(default_factory=dict)  # model → prompt, for drafts not yet generated
    prompt_errors: dict[str, str] = field(default_factory=dict)


class TicketProcessor:
    """The steps for one ticket. `prepare` → backend generation (batched by the worker) → `complete`."""

    def __init__(
        self,
        store: Store,
        zendesk: TicketSource,
        poster: ChatPoster,
        backend: DraftBackend,
        model_names: Sequence[str],
        channel: str,
        product_name: str = "our product",
        rng: random.Random | None = None,
        observe_replies: Callable[[Ticket], int] | None = None,
        sources: SourceFinder | None = None,
    ) -> None:
        """``observe_replies`` sees every ticket read (bot.outcomes: drafts against the reply sent);
        ``sources`` finds the help-centre articles for a ticket (bot.grounding)."""
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
        self.observe_replies = observe_replies
        self.sources = sources

    def prepare(self, ticket_id: int) -> PreparedRound | str:
        """Fetch the ticket, post the parent, record the blind labels, build prompts.

        Returns the outcome as text instead when there is nothing to draft.
        """
        ticket = self.zendesk.fetch_ticket(ticket_id)
        if self.observe_replies is not None:
            self.observe_replies(ticket)
        if ticket.status in FINISHED_STATUSES:
            return f"skipped: ticket is {ticket.status}"
        if self.store.ticket_contact(ticket.id) != (ticket.requester_name, ticket.requester_email):
            self.store.save_ticket_contact(ticket.id, ticket.requester_name, ticket.requester_email)
        question = question_comment(ticket)
        if question is None:
            return "skipped: no public message to answer"
        existing = self.store.round_for(ticket.id, question.id)
        if existing and existing.posted:
            return "skipped: this message already has drafts"
        channel, thread_ts = self._ensure_thread(ticket)
        round_ = existing or self.store.create_round(ticket.id, question.id, self._blind_assignment())
        prepared = PreparedRound(ticket, round_, channel, thread_ts)
        for draft in self.store.drafts_for_round(round_.id):
            if draft.generated:
                continue  # generated before an interruption
            try:
                count = functools.partial(self.backend.count_tokens, draft.model)
                passages = self.sources.passages(draft.model, ticket, count) if self.sources else []
                prepared.prompts[draft.model] = build_prompt(
                    ticket,
                    count_tokens=count,
                    max_tokens=self.backend.context_limit(draft.model),
                    product_name=self.product_name,
                    sources=passages,
                )
            except ValueError as exc:  # prompt cannot fit the context, or a remote server is unreachable
                prepared.prompt_errors[draft.model] = f"could not build the prompt: {exc}"
        return prepared

    def complete(self, prepared: PreparedRound, results: Sequence[DraftResult], final_attempt: bool) -> str:
        """Record the drafts, then post notices and drafts that are not posted yet."""
        round_id = prepared.round.id
        by_model = {r.model: r for r in results}
        for model, error in prepared.prompt_errors.items():
            by_model[model] = DraftResult(model, None, error=error)
        pending = [d for d in self.store.drafts_for_round(round_id) if not d.generated]
        if pending and not any(by_model.get(d.model, _MISSING).ok for d in pending) and not final_attempt:
            errors = "; ".join(
                f"{d.model}: {by_model.get(d.model, _MISSING).error or 'empty draft'}" for d in pending
            )
            raise AllModelsFailed(f"no model produced a draft ({errors})")
        for draft in pending:
            result = by_model.get(draft.model, _MISSING)
            origin = {"model_version": result.model_version, "prompt": result.prompt}
            if result.ok:
                self.store.save_generated(draft.id, result.text, None, **origin)
            else:
                log.warning("model %s failed on ticket %s: %s", draft.model, draft.ticket_id, result.error)
                self.store.save_generated(draft.id, None, result.error or "empty draft", **origin)
        return self._post(prepared)

    def _post(self, prepared: PreparedRound) -> str:
        round_, channel, thread_ts = prepared.round, prepared.channel, prepared.thread_ts
        round_id = round_.id
        posted = set(round_.notices_posted)
        drafts = self.store.drafts_for_round(round_id)
        if round_.number > 1 and "new_round" not in posted:
            text, blocks = new_round_notice(round_.number)
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
            known = KnownValues(prepared.ticket.requester_name, prepared.ticket.requester_email)
            messages = draft_message(
                draft.label, fill_placeholders(draft.text, known), draft.id, rated_count=0
            )
            for index, (text, blocks) in enumerate(messages):
                if index < len(draft.slack_ts):
                    continue  # posted before an interruption
                ts = self.poster.post_in_thread(channel, thread_ts, text, blocks)
                self.store.add_draft_message(draft.id, channel, ts)
        self.store.mark_round_posted(round_id)
        return f"posted {len(drafts) - len(failed)} of {len(drafts)} drafts (round {round_.number})"

    def _ensure_thread(self, ticket: Ticket) -> tuple[str, str]:
        thread = self.store.ticket_thread(ticket.id)
        if thread is not None:
            return thread
        links = self.sources.links(ticket) if self.sources else []
        text, blocks = ticket_parent_message(ticket, links)
        ts = self.poster.post_parent(self.channel, text, blocks)
        self.store.save_ticket_thread(ticket.id, self.channel, ts)
        return self.channel, ts

    def _blind_assignment(self) -> list[tuple[str, str]]:
        shuffled = list(self.model_names)
        self.rng.shuffle(shuffled)
        return list(zip(DRAFT_LABELS, shuffled, strict=False))


_MISSING = DraftResult("", None, error="no result returned")


class Worker:
    """Claims due jobs from the store's queue in batches and runs them, retrying with backoff.

    The drafts of every ticket in a batch go to the backend in one `generate_many` call, so
    a busy queue fills the GPU's batch instead of running tickets one by one.
    """

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

    def run_batch(self, fill_wait: float = 0.0) -> list[Job]:
        """Runs up to `batch_tickets` due jobs together; returns them (as claimed).

        With `fill_wait`, a short batch waits at most that long for more tickets to arrive.
        """
        jobs = self._claim(self.settings.batch_tickets)
        if not jobs:
            return []
        deadline = time.monotonic() + fill_wait
        while len(jobs) < self.settings.batch_tickets and (remaining := deadline - time.monotonic()) > 0:
            if self.wake.wait(remaining):
                self.wake.clear()
                jobs += self._claim(self.settings.batch_tickets - len(jobs))
        prepared: list[tuple[Job, PreparedRound]] = []
        for job in jobs:
            try:
                outcome = self.processor.prepare(job.ticket_id)
            except Exception as exc:
                self._failed(job, exc)
                continue
            if isinstance(outcome, str):
                self._done(job, outcome)
            else:
                prepared.append((job, outcome))
        results = self._generate([p for _, p in prepared])
        for (job, round_), drafts in zip(prepared, results, strict=True):
            try:
                outcome = self.processor.complete(round_, drafts, job.attempts >= self.settings.max_attempts)
            except Exception as exc:
                self._failed(job, exc)
            else:
                self._done(job, outcome)
        return jobs

    def _claim(self, limit: int) -> list[Job]:
        jobs = []
        while len(jobs) < limit and (job := self.store.claim_next_job(self.clock())) is not None:
            jobs.append(job)
        return jobs

    def _generate(self, rounds: Sequence[PreparedRound]) -> list[list[DraftResult]]:
        needing = [r for r in rounds if r.prompts]
        try:
            generated = self.processor.backend.generate_many([r.prompts for r in needing]) if needing else []
        except Exception as exc:  # the whole runtime failed: every draft in the batch is missing
            log.exception("draft generation failed for a batch of %s ticket(s)", len(needing))
            error = f"{type(exc).__name__}: {exc}"
            generated = [[DraftResult(m, None, error=error) for m in r.prompts] for r in needing]
        by_round = {id(r): g for r, g in zip(needing, generated, strict=True)}
        return [by_round.get(id(r), []) for r in rounds]

    def _done(self, job: Job, outcome: str) -> None:
        log.info("ticket %s: %s", job.ticket_id, outcome)
        self.store.finish_job(job.id)

    def _failed(self, job: Job, exc: Exception) -> None:
        if isinstance(exc, TicketNotFound):
            log.warning("job %s: ticket %s not found, dropped: %s", job.id, job.ticket_id, exc)
            self.store.fail_job(job.id, f"ticket not found: {exc}")
            return
        error = f"{type(exc).__name__}: {exc}"
        if job.attempts >= self.settings.max_attempts:
            log.error(
                "job %s (ticket %s) failed for good after %s attempts: %s",
                job.id,
                job.ticket_id,
                job.attempts,
                error,
            )
            self.store.fail_job(job.id, error)
            return
        delay = self.settings.retry_base_seconds * 2 ** (job.attempts - 1)
        asked = exc.retry_after if isinstance(exc, GatewayError) else None
        if asked is not None and asked > delay:
            delay = asked  # the upstream's Retry-After outlasted its client's retries: honour it
        log.warning(
            "job %s (ticket %s) attempt %s failed, retrying in %.0fs: %s",
            job.id,
            job.ticket_id,
            job.attempts,
            delay,
            error,
        )
        self.store.retry_job(job.id, error, self.clock() + timedelta(seconds=delay))

    def run_until_idle(self, limit: int = 10_000) -> int:
        """Runs due jobs until none is due (tests, demo). Returns how many ran."""
        count = 0
        while count < limit and (jobs := self.run_batch()):
            count += len(jobs)
        return count

    def run_forever(self, stop: threading.Event, idle_wait: float = 5.0) -> None:
        while not stop.is_set():
            try:
                ran = self.run_batch(fill_wait=self.settings.batch_wait_seconds)
            except Exception:  # the store itself failed: log and keep the loop alive
                log.exception("worker loop error")
                ran = []
            if not ran:
                self.wake.wait(self._wait_seconds(idle_wait))
                self.wake.clear()

    def _wait_seconds(self, idle_wait: float) -> float:
        due = self.store.next_job_due()
        if due is None:
            return idle_wait
        return max(0.05, min(idle_wait, (due - self.clock()).total_seconds()))

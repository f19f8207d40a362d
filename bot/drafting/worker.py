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
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from bot.config import WorkerSettings
from bot.drafting.crash_points import crash_point
from bot.slack.blocks import (
    draft_message,
    language_notice,
    model_failure_notice,
    new_round_notice,
    ticket_parent_message,
)
from bot.slack.draft_view import known_for_ticket
from core.coordination import Exclusive, alone
from core.domain import (
    DRAFT_LABELS,
    FINISHED_STATUSES,
    DraftResult,
    Job,
    MessageMark,
    RoundRecord,
    Ticket,
    utcnow,
)
from core.languages import LanguageDecision
from core.pii import NO_PUBLIC_CONTACTS, PublicContacts
from core.placeholders import fill_placeholders
from core.ports import ChatError, ChatPoster, DraftBackend, GatewayError, Store, TicketNotFound, TicketSource
from core.prompt import build_prompt
from core.ticket_text import contact_for_placeholders, question_comment, ticket_as_models_read_it

log = logging.getLogger(__name__)


class AllModelsFailed(RuntimeError):
    pass


class PostingElsewhere(RuntimeError):
    """Another replica posts this ticket's thread and has not finished: retried later, when what it
    posted is recorded and is not posted again."""


# How long a replica waits for another one to finish posting a ticket's thread before retrying later.
POST_LOCK_WAIT_SECONDS = 30.0


class SourceFinder(Protocol):
    """Help-centre sources for a ticket (`bot.drafting.grounding`): links to show, passages for a
    prompt, from the articles in the ticket's ``language`` (None: the default locale's)."""

    def links(self, ticket: Ticket, language: str | None = None) -> list[tuple[str, str]]:
        """(title, url) of the articles that fit the ticket best."""
        ...

    def passages(
        self, model: str, ticket: Ticket, count_tokens: Callable[[str], int], language: str | None = None
    ) -> list[str]:
        """The passages for ``model``'s prompt: none for a model without grounding."""
        ...

    def public_contacts(self) -> PublicContacts:
        """The addresses and numbers the Help Center publishes: kept in the models' copy of a ticket."""
        ...


class LanguageDecider(Protocol):
    """Decides a ticket's language (`integrations.language_detector.TicketLanguages`)."""

    def of_ticket(self, ticket: Ticket) -> LanguageDecision: ...


@dataclass
class PreparedRound:
    """A ticket whose round and blind labels are recorded, waiting for (some of) its drafts."""

    ticket: Ticket
    round: RoundRecord
    prompts: dict[str, str] = field(default_factory=dict)  # model → prompt, for drafts not yet generated
    prompt_errors: dict[str, str] = field(default_factory=dict)


class TicketProcessor:
    """The steps for one ticket, one upstream each: `prepare` (Zendesk) → the backend's generation
    (batched by the worker) → `record_drafts` (the store) → `post` (Slack).

    Every Slack message carries a mark (Slack message metadata) and is recorded in the store right
    after it is posted; a step that may have been cut off between the two looks for the mark in
    Slack before posting, so a crash at any moment posts nothing twice.
    """

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
        staff_names: Callable[[], Sequence[str]] | None = None,
        parent_status: Callable[[int], None] | None = None,
        languages: LanguageDecider | None = None,
        model_languages: Mapping[str, Collection[str]] | None = None,
        exclusive: Exclusive = alone,
        post_lock_wait: float = POST_LOCK_WAIT_SECONDS,
    ) -> None:
        """``observe_replies`` sees every ticket read (bot.reporting.outcomes: drafts against the reply sent);
        ``sources`` finds the help-centre articles for a ticket (bot.drafting.grounding); ``staff_names`` are
        the agents' names, redacted wherever they appear, as in training (bot.drafting.staff_names);
        ``parent_status(ticket_id)`` updates the parent message's status line (bot.slack.parent_status);
        ``languages`` decides each round's language (None: none is recorded and every model drafts);
        ``model_languages`` are the languages each model writes (a model missing or with none: every
        language);
        ``exclusive`` keeps two replicas from posting one ticket's thread at once (core.coordination)."""
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
        self.staff_names = staff_names
        self.parent_status = parent_status
        self.languages = languages
        self.model_languages = {name: frozenset(codes) for name, codes in (model_languages or {}).items()}
        self.exclusive = exclusive
        self.post_lock_wait = post_lock_wait

    def prepare(self, ticket_id: int) -> PreparedRound | str:
        """Fetch the ticket, record the round and its blind labels, build prompts. No Slack call.

        Returns the outcome as text instead when there is nothing to draft.
        """
        ticket = self.zendesk.fetch_ticket(ticket_id)
        if self.observe_replies is not None:
            self.observe_replies(ticket)
        if ticket.status in FINISHED_STATUSES:
            return f"skipped: ticket is {ticket.status}"
        contact = contact_for_placeholders(ticket)
        if self.store.ticket_contact(ticket.id) != contact:
            self.store.save_ticket_contact(ticket.id, *contact)
        question = question_comment(ticket)
        if question is None:
            return "skipped: no public message to answer"
        existing = self.store.round_for(ticket.id, question.id)
        if existing and existing.posted:
            return "skipped: this message already has drafts"
        if existing is None:
            language = self._decide_language(ticket)
            round_ = self.store.create_round(
                ticket.id, question.id, self._blind_assignment(language), language=language
            )
        else:
            round_ = existing
        crash_point("round_created")
        prepared = PreparedRound(ticket, round_)
        readable: Ticket | None = None
        for draft in self.store.drafts_for_round(round_.id):
            if draft.generated:
                continue  # generated before an interruption
            readable = readable or ticket_as_models_read_it(
                ticket, self.staff_names() if self.staff_names else (), public=self._public_contacts()
            )
            try:
                count = functools.partial(self.backend.count_tokens, draft.model)
                passages = (
                    self.sources.passages(draft.model, readable, count, round_.language)
                    if self.sources
                    else []
                )
                prepared.prompts[draft.model] = build_prompt(
                    readable,
                    count_tokens=count,
                    max_tokens=self.backend.context_limit(draft.model),
                    product_name=self.product_name,
                    sources=passages,
                    language=round_.language,
                )
            except ValueError as exc:  # prompt cannot fit the context, or a remote server is unreachable
                prepared.prompt_errors[draft.model] = f"could not build the prompt: {exc}"
        return prepared

    def complete(self, prepared: PreparedRound, results: Sequence[DraftResult], final_attempt: bool) -> str:
        """Record the drafts, then post what is not posted yet."""
        self.record_drafts(prepared, results, final_attempt)
        return self.post(prepared)

    def record_drafts(
        self, prepared: PreparedRound, results: Sequence[DraftResult], final_attempt: bool
    ) -> None:
        """Save each draft's text or error. Raises AllModelsFailed (to be retried) when no model
        produced a draft, unless this is the last attempt: then the failures are recorded too."""
        by_model = {r.model: r for r in results}
        for model, error in prepared.prompt_errors.items():
            by_model[model] = DraftResult(model, None, error=error)
        pending = [d for d in self.store.drafts_for_round(prepared.round.id) if not d.generated]
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

    def post(self, prepared: PreparedRound) -> str:
        """Post the parent message (if the ticket has no thread yet), the notices and every draft
        message not recorded as posted, recording each right after it is posted; one replica at a
        time per ticket (a replica that took over a job whose first claimer still posts waits)."""
        with self.exclusive(f"post:{prepared.ticket.id}", wait=self.post_lock_wait) as ours:
            if not ours:
                raise PostingElsewhere(f"another replica is posting ticket {prepared.ticket.id}'s thread")
            return self._post(prepared)

    def _post(self, prepared: PreparedRound) -> str:
        ticket = prepared.ticket
        # The round as stored now, not as prepared: an earlier attempt may have posted notices since.
        round_ = self.store.round_for(ticket.id, prepared.round.comment_id) or prepared.round
        if round_.posted:
            return "skipped: this message already has drafts"
        channel, thread_ts, may_hold_replies = self._ensure_thread(ticket, round_.language)
        thread = _MarkedThread(self.poster, channel, thread_ts, look_first=may_hold_replies)
        posted = set(round_.notices_posted)
        drafts = self.store.drafts_for_round(round_.id)
        notices: list[tuple[str, tuple[str, list[dict]]]] = []
        if round_.number > 1:
            notices.append(("new_round", new_round_notice(round_.number)))
        uncovered = self._models_without(round_.language)
        if uncovered:
            notices.append(("language", language_notice(round_.language or "", len(drafts))))
        failed = [d for d in drafts if d.text is None]
        if failed:
            notices.append(("failures", model_failure_notice(len(failed), len(drafts))))
        for notice, (text, blocks) in notices:
            if notice in posted:
                continue
            thread.post(MessageMark.notice(ticket.id, round_.id, notice), text, blocks)
            crash_point("notice_posted")
            self.store.mark_notice_posted(round_.id, notice)
        known = known_for_ticket(self.store, ticket.id)  # the contact `prepare` saved
        for draft in drafts:
            if draft.text is None:
                continue
            messages = draft_message(
                draft.label, fill_placeholders(draft.text, known), draft.id, rated_count=0
            )
            for index, (text, blocks) in enumerate(messages):
                if index < len(draft.slack_ts):
                    continue  # posted and recorded before an interruption
                ts = thread.post(MessageMark.draft_part(ticket.id, draft.id, index), text, blocks)
                crash_point("draft_posted")
                self.store.add_draft_message(draft.id, channel, ts)
        self.store.mark_round_posted(round_.id)
        if round_.number > 1 and self.parent_status is not None:  # was "answered": a new round waits
            self.parent_status(ticket.id)
        return f"posted {len(drafts) - len(failed)} of {len(drafts)} drafts (round {round_.number})"

    def _ensure_thread(self, ticket: Ticket, language: str | None) -> tuple[str, str, bool]:
        """(channel, parent ts, whether the thread may hold replies already) of the ticket's thread,
        posting the parent message if it is not recorded.

        The parent is recorded as pending before it is posted; a pending parent is looked for in
        the channel's recent history (by its mark) before it is posted again, so a crash between
        the post and its record never leaves two parents (the first one without drafts).
        """
        thread = self.store.ticket_thread(ticket.id)
        if thread is not None:
            return thread[0], thread[1], True
        mark = MessageMark.parent(ticket.id)
        pending = self.store.thread_pending(ticket.id)
        if pending is not None:
            channel, since = pending
            found = _look_up(
                lambda: self.poster.marked_in_channel(channel, since - PENDING_PARENT_MARGIN)
            ).get(mark)
            if found is not None:
                log.info("ticket %s: parent message %s, posted before a restart, kept", ticket.id, found)
                self.store.save_ticket_thread(ticket.id, channel, found)
                return channel, found, True
        else:
            channel = self.channel
            self.store.mark_thread_pending(ticket.id, channel, utcnow())
        links = self.sources.links(ticket, language) if self.sources else []
        text, blocks = ticket_parent_message(ticket, links, language)
        ts = self.poster.post_parent(channel, text, blocks, mark=mark)
        crash_point("parent_posted")
        self.store.save_ticket_thread(ticket.id, channel, ts)
        return channel, ts, False

    def _public_contacts(self) -> PublicContacts:
        """The Help Center's own addresses and numbers, kept in the models' copy as in training."""
        return self.sources.public_contacts() if self.sources else NO_PUBLIC_CONTACTS

    def _decide_language(self, ticket: Ticket) -> str | None:
        """The new round's language: its message's, when the text decides; else the ticket's earlier
        rounds' (a German customer's "Danke!" in round 2 stays German), else the locale's or default."""
        if self.languages is None:
            return None
        decision = self.languages.of_ticket(ticket)
        language, source = decision.language, decision.decided_by
        if source != "text":
            earlier = [d.language for d in self.store.drafts_for_ticket(ticket.id) if d.language]
            if earlier:
                language, source = earlier[-1], "earlier rounds"
        log.info(
            "ticket %s: language %s (from the %s)",
            ticket.id,
            language,
            {"text": "text", "locale": "requester's locale", "default": "default"}.get(source, source),
            extra={"ticket_id": ticket.id},
        )
        return language

    def _writes(self, model: str, language: str | None) -> bool:
        codes = self.model_languages.get(model)
        return language is None or not codes or language in codes

    def _models_without(self, language: str | None) -> list[str]:
        """The configured models that do not write ``language``."""
        return [m for m in self.model_names if not self._writes(m, language)]

    def _blind_assignment(self, language: str | None) -> list[tuple[str, str]]:
        """Blind labels for the models that write the round's language, in a random order."""
        shuffled = [m for m in self.model_names if self._writes(m, language)]
        self.rng.shuffle(shuffled)
        return list(zip(DRAFT_LABELS, shuffled, strict=False))


# Slack's clock and ours may differ: a pending parent is looked for from this long before it was marked.
PENDING_PARENT_MARGIN = timedelta(minutes=10)


def _look_up(read: Callable[[], dict[MessageMark, str]]) -> dict[MessageMark, str]:
    """A look-up of marked messages. Without the history scopes (an app installed before they were
    needed) it finds nothing, loudly: posting then is at-least-once, as before, rather than never."""
    try:
        return read()
    except ChatError as exc:
        if exc.code != "missing_scope":
            raise
        log.error("could not look for messages posted before a restart, so one may be posted twice: %s", exc)
        return {}


class _MarkedThread:
    """Posts marked replies in one thread. With ``look_first`` (a thread that an earlier attempt
    may have posted in), the thread's marked messages are read once, on the first post, and a mark
    already there is answered with its ``ts`` instead of being posted again."""

    def __init__(self, poster: ChatPoster, channel: str, thread_ts: str, look_first: bool) -> None:
        self.poster = poster
        self.channel = channel
        self.thread_ts = thread_ts
        self._found: dict[MessageMark, str] | None = None if look_first else {}

    def post(self, mark: MessageMark, text: str, blocks: list[dict]) -> str:
        if self._found is None:
            self._found = _look_up(lambda: self.poster.marked_in_thread(self.channel, self.thread_ts))
        ts = self._found.get(mark)
        if ts is not None:
            log.info("%s %s was posted before a restart: kept", mark.event_type, mark.as_payload())
            return ts
        return self.poster.post_in_thread(self.channel, self.thread_ts, text, blocks, mark=mark)


_MISSING = DraftResult("", None, error="no result returned")


class Worker:
    """The job side of drafting: claims due jobs, records their outcomes (done, retried with
    backoff, failed), and generates the drafts of several tickets in one backend batch.

    `run_batch` and `run_until_idle` run the steps in series (tests, tools); `draftdesk run` runs
    them as `bot.drafting.pipeline.Pipeline`, one stage per upstream.
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

        With `fill_wait`, a short batch waits at most that long for more tickets to arrive. A
        second job of a ticket already in the batch runs after it, never beside it.
        """
        jobs = self.claim(self.settings.batch_tickets)
        if not jobs:
            return []
        deadline = time.monotonic() + fill_wait
        while len(jobs) < self.settings.batch_tickets and (remaining := deadline - time.monotonic()) > 0:
            if self.wake.wait(remaining):
                self.wake.clear()
                jobs += self.claim(self.settings.batch_tickets - len(jobs))
        waiting = jobs
        while waiting:
            now, waiting = one_per_ticket(waiting)
            self._run_in_series(now)
        return jobs

    def _run_in_series(self, jobs: list[Job]) -> None:
        prepared: list[tuple[Job, PreparedRound]] = []
        for job in jobs:
            try:
                outcome = self.processor.prepare(job.ticket_id)
            except Exception as exc:
                self.failed(job, exc)
                continue
            if isinstance(outcome, str):
                self.done(job, outcome)
            else:
                prepared.append((job, outcome))
        results = self.generate([p for _, p in prepared])
        for (job, round_), drafts in zip(prepared, results, strict=True):
            try:
                outcome = self.processor.complete(round_, drafts, self.final_attempt(job))
            except Exception as exc:
                self.failed(job, exc)
            else:
                self.done(job, outcome)

    def claim(self, limit: int) -> list[Job]:
        jobs = []
        while len(jobs) < limit and (job := self.store.claim_next_job(self.clock())) is not None:
            jobs.append(job)
        return jobs

    def final_attempt(self, job: Job) -> bool:
        return job.attempts >= self.settings.max_attempts

    def generate(self, rounds: Sequence[PreparedRound]) -> list[list[DraftResult]]:
        """The drafts of every round that needs some, in one backend batch; per round, in order."""
        needing = [r for r in rounds if r.prompts]
        try:
            generated = self.processor.backend.generate_many([r.prompts for r in needing]) if needing else []
        except Exception as exc:  # the whole runtime failed: every draft in the batch is missing
            log.exception("draft generation failed for a batch of %s ticket(s)", len(needing))
            error = f"{type(exc).__name__}: {exc}"
            generated = [[DraftResult(m, None, error=error) for m in r.prompts] for r in needing]
        by_round = {id(r): g for r, g in zip(needing, generated, strict=True)}
        return [by_round.get(id(r), []) for r in rounds]

    def done(self, job: Job, outcome: str) -> None:
        log.info("ticket %s: %s", job.ticket_id, outcome)
        self.store.finish_job(job.id)

    def failed(self, job: Job, exc: Exception) -> None:
        """Back to the queue with backoff (at least the upstream's Retry-After), or failed for good."""
        if isinstance(exc, TicketNotFound):
            log.warning("job %s: ticket %s not found, dropped: %s", job.id, job.ticket_id, exc)
            self.store.fail_job(job.id, f"ticket not found: {exc}")
            return
        error = f"{type(exc).__name__}: {exc}"
        if self.final_attempt(job):
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
        asked = retry_after(exc)
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

    def seconds_until_due(self, idle_wait: float) -> float:
        """How long to sleep before the next job is due, at most ``idle_wait`` (and that long when
        the store cannot say: a database away for a moment must not end the worker's loop)."""
        try:
            due = self.store.next_job_due()
        except Exception as exc:
            log.warning("could not read when the next job is due: %s", exc)
            return idle_wait
        if due is None:
            return idle_wait
        return max(0.05, min(idle_wait, (due - self.clock()).total_seconds()))


def one_per_ticket(jobs: Sequence[Job]) -> tuple[list[Job], list[Job]]:
    """(the first job of each ticket, the later ones): two jobs of one ticket never run side by side."""
    first: dict[int, Job] = {}
    later: list[Job] = []
    for job in jobs:
        if job.ticket_id in first:
            later.append(job)
        else:
            first[job.ticket_id] = job
    return list(first.values()), later


def retry_after(exc: BaseException) -> float | None:
    """The seconds an upstream asked to wait (its Retry-After), if the error carries them."""
    return exc.retry_after if isinstance(exc, GatewayError) else None

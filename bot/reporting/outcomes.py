"""The reply actually sent: how each draft of a round compares with the agent's public reply.

When a ticket that has drafts gets its agent's first public reply after the customer message the
drafts answered (seen whenever the worker reads the ticket: polling, or a webhook on update), every
draft of that round is measured against the reply: chrF (sacrebleu) and the normalised Levenshtein
distance (rapidfuzz), and whether it was the draft sent to Zendesk from Slack. The digest then shows,
per blind model, how often its draft was sent and how close it came to what the customer got.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.chrf import chrf
from core.domain import Comment, DraftOutcome, DraftRecord, Ticket
from core.placeholders import KnownValues, fill_placeholders
from core.ports import Store
from core.ticket_text import contact_for_placeholders

log = logging.getLogger(__name__)


def first_agent_reply(ticket: Ticket, question: Comment) -> Comment | None:
    """The first public comment after ``question`` written on the agents' side."""
    after = False
    for comment in ticket.comments:
        if after and comment.public and comment.by_agent:
            return comment
        after = after or comment.id == question.id
    return None


def similarity(draft: str, reply: str) -> tuple[float, float]:
    """(chrF 0-100, normalised edit distance 0-1) of a draft against the reply that was sent."""
    from rapidfuzz.distance import Levenshtein

    return round(chrf(draft, reply), 2), round(
        Levenshtein.normalized_distance(draft.strip(), reply.strip()), 4
    )


def measure(
    drafts: Sequence[DraftRecord], reply: Comment, known: KnownValues | None = None
) -> list[DraftOutcome]:
    """An outcome for each draft that has text (a failed model's draft has nothing to compare),
    compared as agents saw it: its placeholders filled with what ``known`` holds."""
    outcomes = []
    for draft in drafts:
        if draft.text is None:
            continue
        chrf, distance = similarity(fill_placeholders(draft.text, known or KnownValues()), reply.body)
        outcomes.append(
            DraftOutcome(
                ticket_id=draft.ticket_id,
                draft_id=draft.id,
                model=draft.model,
                reply_comment_id=reply.id,
                sent=draft.sent_to_zendesk_by is not None,
                chrf=chrf,
                edit_distance=distance,
                replied_at=reply.created_at,
            )
        )
    return outcomes


def observe_replies(store: Store, ticket: Ticket) -> int:
    """Measure every posted round of ``ticket`` that has an agent reply and no outcomes yet; returns
    how many drafts were measured. Cheap when there is nothing new: a look-up per customer message."""
    measured = 0
    for question in ticket.comments:
        if not (question.public and question.by_customer):
            continue
        round_ = store.round_for(ticket.id, question.id)
        if round_ is None or not round_.posted:
            continue
        reply = first_agent_reply(ticket, question)
        drafts = [d for d in store.drafts_for_round(round_.id) if d.text is not None]
        if reply is None or not drafts or store.outcome(drafts[0].id) is not None:
            continue
        outcomes = measure(drafts, reply, KnownValues(*contact_for_placeholders(ticket)))
        store.record_outcomes(outcomes)
        measured += len(outcomes)
        log.info("ticket %s: measured %s draft(s) against the reply sent", ticket.id, len(outcomes))
    return measured


@dataclass(frozen=True)
class OutcomeStats:
    """Per model: of the rounds answered in a period, how often its draft was the one sent, and
    how close its drafts came to the reply the customer got."""

    model: str
    n: int
    sent: int
    mean_chrf: float | None
    median_edit_distance: float | None

    @property
    def sent_pct(self) -> float | None:
        return round(100 * self.sent / self.n, 1) if self.n else None


def outcome_stats(outcomes: Sequence[DraftOutcome], models: Sequence[str] = ()) -> list[OutcomeStats]:
    by_model: dict[str, list[DraftOutcome]] = {m: [] for m in models}
    for outcome in outcomes:
        by_model.setdefault(outcome.model, []).append(outcome)
    return [
        OutcomeStats(
            model,
            len(rows),
            sum(o.sent for o in rows),
            round(statistics.fmean(o.chrf for o in rows), 1) if rows else None,
            round(statistics.median(o.edit_distance for o in rows), 3) if rows else None,
        )
        for model, rows in by_model.items()
    ]


ReplyObserver = Callable[[Ticket], int]


def replies_observer(store: Store) -> ReplyObserver:
    """What the worker calls with every ticket it reads; a failure here never stops drafting."""

    def observe(ticket: Ticket) -> int:
        try:
            return observe_replies(store, ticket)
        except Exception:  # a measurement is a side signal: log it, draft on
            log.exception("could not measure the drafts of ticket %s against the reply sent", ticket.id)
            return 0

    return observe

"""Each agent's App Home tab: what they rated this week, what they sent, the tickets waiting for
their rating, and, for the digest's recipients only, the week's standings per model.

Raters never see which model wrote which draft: their lists name tickets and blind labels only, and
the standings (which name models) go to the people the weekly digest goes to anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bot.reporting.stats import model_stats
from bot.slack.blocks import draft_name, escape_mrkdwn
from core.domain import DraftRecord, utcnow
from core.ports import ChatError, ChatModals, Store

log = logging.getLogger(__name__)

RECENT_DAYS = 7  # "waiting" and "sent" look this far back
MAX_LINES = 25  # per list: a Home tab is for glancing, the thread has the rest


def week_start(now: datetime) -> datetime:
    """Monday 00:00 UTC of ``now``'s week."""
    day = now.date() - timedelta(days=now.weekday())
    return datetime(day.year, day.month, day.day, tzinfo=now.tzinfo)


@dataclass(frozen=True)
class HomeData:
    rated: list[tuple[DraftRecord, int]]  # (draft, the agent's score), newest first
    sent: list[DraftRecord]
    waiting: list[tuple[int, int, int]]  # (ticket, its newest round, drafts to rate in it)
    standings: list[tuple[str, int, float | None, float | None]] | None  # (model, n, mean, positive %)
    links: dict[str, str] = field(default_factory=dict)  # draft id or "#TICKET" (its thread) → link


def gather(store: Store, user: str, now: datetime, models: Sequence[str], show_standings: bool) -> HomeData:
    monday = week_start(now)
    week_votes = store.votes(monday, now + timedelta(seconds=1))
    mine = sorted((v for v in week_votes if v.rater == user), key=lambda v: v.voted_at, reverse=True)
    rated = [(d, v.score) for v in mine if (d := store.draft(v.draft_id)) is not None]
    recent = store.drafts_posted_since(now - timedelta(days=RECENT_DAYS))
    sent = [d for d in recent if d.sent_to_zendesk_by == user]
    my_drafts = {
        v.draft_id
        for v in store.votes(now - timedelta(days=RECENT_DAYS + 7), now + timedelta(seconds=1))
        if v.rater == user
    }
    waiting = _waiting(recent, my_drafts)
    standings = None
    if show_standings:
        standings = [(s.model, s.n, s.mean, s.positive_pct) for s in model_stats(week_votes, models)]
    return HomeData(rated, sent, waiting, standings)


def _waiting(recent: Sequence[DraftRecord], rated_by_me: set[str]) -> list[tuple[int, int, int]]:
    """Tickets whose newest round has drafts the agent has not rated, and nothing sent yet."""
    newest: dict[int, list[DraftRecord]] = {}
    for draft in recent:
        current = newest.get(draft.ticket_id)
        if current is None or draft.round_number > current[0].round_number:
            newest[draft.ticket_id] = [draft]
        elif draft.round_number == current[0].round_number:
            current.append(draft)
    waiting = []
    for ticket_id, drafts in sorted(newest.items(), reverse=True):
        if any(d.sent_to_zendesk_by for d in drafts):
            continue
        unrated = [d for d in drafts if d.text is not None and d.id not in rated_by_me]
        if unrated:
            waiting.append((ticket_id, drafts[0].round_number, len(unrated)))
    return waiting


def _section(text: str, block_id: str) -> dict[str, Any]:
    return {
        "type": "section",
        "block_id": block_id,
        "text": {"type": "mrkdwn", "text": text, "verbatim": True},
    }


def _list(title: str, lines: Sequence[str], empty: str, block_id: str) -> list[dict[str, Any]]:
    shown = list(lines[:MAX_LINES])
    if len(lines) > MAX_LINES:
        shown.append(f"_… and {len(lines) - MAX_LINES} more_")
    return [
        {"type": "header", "block_id": f"{block_id}_title", "text": {"type": "plain_text", "text": title}},
        _section("\n".join(shown) if shown else f"_{empty}_", block_id),
    ]


def _linked(text: str, link: str | None) -> str:
    return f"<{link}|{text}>" if link else text


def home_view(data: HomeData) -> dict[str, Any]:
    """The Home tab. Lists name tickets and blind labels, never models; only ``standings`` does.
    A line opens its thread or draft in Slack where ``data.links`` has a link for it."""

    def draft_line(draft: DraftRecord) -> str:
        name = f"Ticket #{draft.ticket_id}, {draft_name(draft.label, draft.round_number)}"
        return f"• {_linked(name, data.links.get(draft.id))}"

    def waiting_line(ticket_id: int, round_number: int, unrated: int) -> str:
        line = f"• {_linked(f'Ticket #{ticket_id}', data.links.get(f'#{ticket_id}'))}: "
        line += f"{unrated} draft{'s' if unrated != 1 else ''} to rate"
        return line + (f" (round {round_number})" if round_number > 1 else "")

    blocks: list[dict[str, Any]] = []
    blocks += _list(
        f"Waiting for your rating ({len(data.waiting)})",
        [waiting_line(*waiting) for waiting in data.waiting],
        "Nothing waiting: every recent ticket has your rating or an answer sent.",
        "waiting",
    )
    blocks += _list(
        f"You rated this week ({len(data.rated)})",
        [f"{draft_line(d)}: {score}/5" for d, score in data.rated],
        "No ratings yet this week.",
        "rated",
    )
    blocks += _list(
        f"You sent to Zendesk (last {RECENT_DAYS} days)",
        [draft_line(d) for d in data.sent],
        "Nothing sent.",
        "sent",
    )
    if data.standings is not None:
        rows = [
            f"• *{escape_mrkdwn(model)}*: {n} rating{'s' if n != 1 else ''}"
            + (
                f", mean {mean:.2f}, {positive:.0f}% positive (3–5)"
                if mean is not None and positive is not None
                else ""
            )
            for model, n, mean, positive in data.standings
        ]
        blocks += _list(
            "Standings this week (digest recipients only)", rows, "No ratings yet this week.", "standings"
        )
    return {"type": "home", "blocks": blocks}


class AgentHome:
    """Publishes an agent's Home tab when they open it."""

    def __init__(
        self,
        store: Store,
        chat: ChatModals,
        models: Sequence[str],
        digest_users: Sequence[str],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.chat = chat
        self.models = list(models)
        self.digest_users = frozenset(digest_users)
        self.clock = clock

    def publish(self, user: str) -> None:
        data = gather(self.store, user, self.clock(), self.models, user in self.digest_users)
        data = replace(data, links=self._links(data))
        try:
            self.chat.publish_home(user, home_view(data))
        except ChatError as exc:
            log.warning("could not publish the Home tab of %s: %s", user, exc)

    def _links(self, data: HomeData) -> dict[str, str]:
        """Links to the threads waiting and the drafts listed (a line without one is plain text)."""
        drafts = [d for d, _ in data.rated[:MAX_LINES]] + data.sent[:MAX_LINES]
        tickets = {t for t, _, _ in data.waiting[:MAX_LINES]} | {d.ticket_id for d in drafts}
        threads = {t: self.store.ticket_thread(t) for t in tickets}  # one look-up per ticket
        links: dict[str, str] = {}
        for ticket_id, _, _ in data.waiting[:MAX_LINES]:
            thread = threads[ticket_id]
            if thread and (link := self.chat.message_link(*thread)):
                links[f"#{ticket_id}"] = link
        for draft in drafts:
            thread = threads[draft.ticket_id]
            if draft.channel and draft.vote_ts:
                link = self.chat.message_link(draft.channel, draft.vote_ts, thread[1] if thread else None)
                if link:
                    links[draft.id] = link
        return links

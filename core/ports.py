"""The contracts the layers meet at: what the bot needs from a model runtime, a ticket system, a
chat and its own storage, and the errors that belong to those contracts rather than to one adapter.

Adapters (`models/`, `integrations/`, the TinyDB store in `bot/`) implement them; services (`bot/`)
depend on them only, so a test can hand a service an in-memory double (`bot.store.memory`,
`tests.recording_poster`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from core.domain import (
    Agent,
    ChatUser,
    DraftOutcome,
    DraftRecord,
    DraftResult,
    Job,
    MessageMark,
    RoundRecord,
    SendRecord,
    Ticket,
    Vote,
)


class DraftBackend(Protocol):
    """A model runtime: the local engine, OpenAI-compatible servers, both, or a test double.

    ``generate`` / ``generate_many`` return results in spec order (the order of ``[[models]]``),
    limited to the models named in each mapping, and never raise for one model's failure: that
    model's DraftResult carries ``error``.
    """

    def count_tokens(self, model_name: str, text: str) -> int: ...

    def context_limit(self, model_name: str) -> int: ...

    def generate(self, prompts: Mapping[str, str]) -> list[DraftResult]: ...

    def generate_many(self, batch: Sequence[Mapping[str, str]]) -> list[list[DraftResult]]: ...


class TicketSource(Protocol):
    """Where the worker reads a ticket and its conversation."""

    def fetch_ticket(self, ticket_id: int) -> Ticket: ...


class StaffDirectory(Protocol):
    """Who works on the tickets (Zendesk's agents and admins). Failures raise :class:`GatewayError`."""

    def staff_names(self) -> list[str]: ...


class ChatPoster(Protocol):
    """The chat calls the services make (Slack in production). Failures raise :class:`ChatError`.

    Every ``post*`` returns the new message's id (Slack's ``ts``), unique within its channel;
    ``post_in_thread`` replies in the thread opened by the message ``thread_ts``. A ``mark`` travels
    with the message (Slack message metadata), and the ``marked_*`` look-ups find marked messages
    again: how the worker avoids posting a message twice after a crash.
    """

    def post(self, channel: str, text: str, blocks: list[dict] | None = None) -> str: ...

    def post_parent(
        self, channel: str, text: str, blocks: list[dict] | None = None, mark: MessageMark | None = None
    ) -> str: ...

    def post_in_thread(
        self,
        channel: str,
        thread_ts: str,
        text: str,
        blocks: list[dict] | None = None,
        mark: MessageMark | None = None,
    ) -> str: ...

    def marked_in_thread(self, channel: str, thread_ts: str) -> dict[MessageMark, str]:
        """The marked messages of a thread (the parent and every reply): mark → ts."""
        ...

    def marked_in_channel(self, channel: str, since: datetime) -> dict[MessageMark, str]:
        """The marked top-level messages of a channel posted since ``since``: mark → ts."""
        ...

    def message(self, channel: str, ts: str) -> tuple[str, list[dict]] | None:
        """A thread's parent message as it reads now: (text, blocks); None if there is none."""
        ...

    def update(self, channel: str, ts: str, text: str, blocks: list[dict] | None = None) -> None: ...

    def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        thread_ts: str | None = None,
        blocks: list[dict] | None = None,
    ) -> None: ...

    def dm(self, user_id: str, text: str, blocks: list[dict] | None = None) -> None: ...

    def upload(self, channel: str, filename: str, content: bytes, title: str) -> None:
        """Share a file (the digest's chart) in a channel."""
        ...

    def dm_upload(self, user_id: str, filename: str, content: bytes, title: str) -> None:
        """Share a file in the direct-message channel with a user."""
        ...


class ChatModals(Protocol):
    """Modal dialogs and user profiles (Slack's ``views.*`` and ``users.info``). Failures raise
    :class:`ChatError`."""

    def open_view(self, trigger_id: str, view: dict) -> tuple[str, str]:
        """Open a modal for the click that gave ``trigger_id`` (valid for 3 s); (view id, hash)."""
        ...

    def update_view(self, view_id: str, view: dict, view_hash: str | None = None) -> None:
        """Replace an open modal; with ``view_hash``, only if no one replaced it since."""
        ...

    def publish_home(self, user_id: str, view: dict) -> None:
        """Show ``view`` as the user's App Home tab."""
        ...

    def user_profile(self, user_id: str) -> ChatUser:
        """The chat user's display name and e-mail ("" when the app may not read it)."""
        ...

    def message_link(self, channel: str, ts: str, thread_ts: str | None = None) -> str | None:
        """A link that opens the message (in its thread) in the chat; None if none can be made."""
        ...


class TicketReplies(Protocol):
    """What sending a draft needs from the ticket system."""

    def fetch_ticket(self, ticket_id: int) -> Ticket: ...

    def add_comment(
        self, ticket_id: int, body: str, public: bool, author_id: int | None = None
    ) -> int | None:
        """Add the comment as ``author_id`` (None: the API user); the new comment's id if known."""
        ...

    def agent_by_email(self, email: str) -> Agent | None:
        """The active agent with this e-mail, or None."""
        ...


class HelpCenterSource(Protocol):
    """Where the Help Center's articles come from (Zendesk Guide)."""

    def help_center_articles(self, locale: str) -> Iterable[Any]:
        """Every article of the Help Center in ``locale`` (its own listing); each has ``id``,
        ``title``, ``body`` (HTML), ``locale``, ``url``, ``updated_at`` and ``draft``."""
        ...


class Store(Protocol):
    """The bot's durable state: the job queue, tickets' threads, draft rounds, votes, small state.

    Implementations: ``bot.store.partitioned.PartitionedStore`` (TinyDB files, every write atomic)
    and ``bot.store.memory.MemoryStore`` (tests). All must pass ``tests/test_store.py``. Every method is
    safe to call from several threads, and every returned record is a snapshot.
    """

    # jobs: a queue with at most one *queued* job per ticket
    def enqueue(self, ticket_id: int, source: str, now: datetime | None = None) -> bool:
        """Queue a ticket unless a job for it is already queued; True if a job was added.
        A *running* job does not absorb the new one: it may have read the ticket too early."""
        ...

    def claim_next_job(self, now: datetime | None = None) -> Job | None:
        """The queued job due first (``not_before <= now``), now running with one more attempt."""
        ...

    def finish_job(self, job_id: int) -> None: ...

    def retry_job(self, job_id: int, error: str, not_before: datetime) -> None:
        """Back to the queue, not to be claimed before ``not_before``."""
        ...

    def fail_job(self, job_id: int, error: str) -> None: ...

    def requeue_interrupted_jobs(self) -> int:
        """At start-up: jobs left running by a stopped process go back to the queue; how many."""
        ...

    def requeue_job(self, job_id: int, now: datetime | None = None) -> Job | None:
        """An operator's retry: a failed or queued job is due now with its attempts reset. If the
        ticket has another queued job, that one absorbs this one (one queued job per ticket) and is
        returned. None for a running or unknown job."""
        ...

    def drop_job(self, job_id: int) -> bool:
        """An operator's drop: a queued or failed job leaves the queue; False if running or unknown."""
        ...

    def jobs(self, status: str | None = None) -> list[Job]: ...

    def next_job_due(self) -> datetime | None: ...

    # tickets' Slack threads
    def ticket_thread(self, ticket_id: int) -> tuple[str, str] | None:
        """(channel, ts of the parent message) of the ticket's thread, once it is posted."""
        ...

    def save_ticket_thread(self, ticket_id: int, channel: str, ts: str) -> None: ...

    def mark_thread_pending(self, ticket_id: int, channel: str, since: datetime) -> None:
        """Recorded just before the parent message is posted: if the process dies before
        ``save_ticket_thread``, the next attempt looks for the message in ``channel`` first."""
        ...

    def thread_pending(self, ticket_id: int) -> tuple[str, datetime] | None:
        """(channel, since) of a parent message that may have been posted but is not recorded."""
        ...

    # rounds and their drafts
    def round_for(self, ticket_id: int, comment_id: int) -> RoundRecord | None: ...

    def create_round(
        self,
        ticket_id: int,
        comment_id: int,
        assignments: Sequence[tuple[str, str]],
        language: str | None = None,
    ) -> RoundRecord:
        """Record the ticket's next round (numbered from 1) and one draft per (label, model)
        assignment (none: no model writes the round's language), before anything is generated.
        ``language``: the customer's (ISO 639-1), kept with the round and its drafts; a round stored
        without one reads as None. Ids: ``round_id_for``, ``draft_id_for``."""
        ...

    def mark_round_posted(self, round_id: str) -> None: ...

    def mark_notice_posted(self, round_id: str, notice: str) -> None: ...

    def drafts_for_round(self, round_id: str) -> list[DraftRecord]:
        """The round's drafts in label order."""
        ...

    def drafts_for_ticket(self, ticket_id: int) -> list[DraftRecord]:
        """Every draft of the ticket, by round, then label."""
        ...

    def save_generated(
        self,
        draft_id: str,
        text: str | None,
        error: str | None,
        model_version: str | None = None,
        prompt: str | None = None,
    ) -> None:
        """The model's answer (or why there is none), the adapter version and the exact prompt."""
        ...

    def add_draft_message(self, draft_id: str, channel: str, ts: str) -> None:
        """One more Slack message of the draft (KeyError for an unknown draft)."""
        ...

    def draft(self, draft_id: str) -> DraftRecord | None: ...

    def draft_by_message(self, channel: str, ts: str) -> DraftRecord | None:
        """The draft any of whose messages has this ts: reactions may land on any part."""
        ...

    def mark_sent(self, draft_id: str, user: str) -> None: ...

    def drafts_posted_since(self, since: datetime) -> list[DraftRecord]:
        """The drafts whose first Slack message was posted at ``since`` or later (``ts`` is the
        time), by ticket, round, then label."""
        ...

    # sends of drafts into Zendesk: recorded (pending) before the call, their outcome after
    def record_send(self, send: SendRecord) -> None:
        """Add the send, or replace the recorded one with the same id."""
        ...

    def sends_for_round(self, round_id: str) -> list[SendRecord]:
        """The round's sends, oldest first."""
        ...

    def pending_sends(self) -> list[SendRecord]:
        """Every send still pending: the process stopped before it learnt the outcome."""
        ...

    # the requester of a ticket, to fill placeholders when a draft is shown again
    def save_ticket_contact(self, ticket_id: int, name: str, email: str) -> None: ...

    def ticket_contact(self, ticket_id: int) -> tuple[str, str] | None:
        """(name, e-mail) of the ticket's requester, as last saved."""
        ...

    # votes: one per (draft, rater), the latest wins
    def record_vote(self, vote: Vote) -> None: ...

    def remove_reaction_vote(self, draft_id: str, rater: str, score: int) -> bool:
        """Remove the rater's vote only if it is still the reaction with this score; True if removed."""
        ...

    def rated_count(self, draft_id: str) -> int: ...

    def set_vote_reason(self, draft_id: str, rater: str, reason: str, note: str | None = None) -> bool:
        """Attach why a draft failed to the rater's vote on it; False (nothing changed) unless that
        vote exists and is negative (1-2): a rater who changed the score meanwhile keeps no stale reason."""
        ...

    def votes(self, since: datetime | None = None, until: datetime | None = None) -> list[Vote]:
        """Votes with since <= voted_at < until, oldest first."""
        ...

    # how drafts compared with the reply actually sent: one outcome per draft, the first kept
    def record_outcomes(self, outcomes: Sequence[DraftOutcome]) -> None:
        """Keep each draft's outcome (a draft already measured keeps its first)."""
        ...

    def outcome(self, draft_id: str) -> DraftOutcome | None: ...

    def outcomes(self, since: datetime | None = None, until: datetime | None = None) -> list[DraftOutcome]:
        """Outcomes with since <= replied_at < until, oldest first."""
        ...

    # small state (poll cursor, digest bookkeeping): JSON values
    def get_meta(self, key: str, default: Any = None) -> Any: ...

    def set_meta(self, key: str, value: Any) -> None: ...

    def close(self) -> None: ...


class GatewayError(Exception):
    """An upstream service (ticket system, chat) could not do what was asked.

    ``retry_after``: seconds the upstream asked us to wait (its ``Retry-After``) when that outlasted
    the client library's own retries; a caller that retries later waits at least this long.
    """

    retry_after: float | None = None


class TicketNotFound(GatewayError):
    """The ticket does not exist (any more): deleted, merged away, or a wrong id. Not retried."""


class UpstreamUnavailable(GatewayError):
    """The upstream could not be used now: outage, rate limit, credentials. Says what to check."""


class ChatError(GatewayError):
    """The chat refused or failed a call. ``code`` is a short machine-readable reason."""

    def __init__(self, message: str, code: str = "chat_error") -> None:
        super().__init__(message)
        self.code = code

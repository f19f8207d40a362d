"""Domain types shared by every layer. Pure data: no I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

SCORES = (1, 2, 3, 4, 5)
NEGATIVE_SCORES = frozenset({1, 2})  # the study: 1-2 negative, 3-5 positive
VOTE_SOURCES = ("button", "reaction", "import")
# Why a draft rated 1 or 2 failed (the agent's optional answer), code -> what the agent is shown.
VOTE_REASONS = {
    "wrong_facts": "Wrong facts",
    "not_answered": "Did not answer the question",
    "tone": "Tone",
    "too_long": "Too long",
    "too_short": "Too short",
    "unsafe": "Unsafe or leaks personal data",
    "other": "Other",
}
DRAFT_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# A ticket in one of these needs no draft: it is answered, or gone (webhook and poll intake alike).
FINISHED_STATUSES = frozenset({"solved", "closed", "deleted"})


@dataclass(frozen=True)
class Comment:
    """One comment on a Zendesk ticket."""

    id: int
    author_id: int
    body: str
    public: bool
    created_at: datetime
    author_is_requester: bool
    # Who else wrote it, as Zendesk's user record says: "end-user" (a CC'd colleague of the
    # requester), "agent" (agents and admins), "unknown" (no record: a deleted user); "" when the
    # record was not read (the author then counts as an agent unless they are the requester).
    author_role: str = ""

    @property
    def by_customer(self) -> bool:
        """Written on the customer's side: by the requester or another end user."""
        return self.author_is_requester or self.author_role == "end-user"

    @property
    def by_agent(self) -> bool:
        """Written on the agents' side: not the customer's, and by someone Zendesk still knows (a
        deleted user's or an automatic comment is neither, as in training data)."""
        return not self.by_customer and self.author_role != "unknown"


@dataclass(frozen=True)
class Ticket:
    """A Zendesk ticket with its conversation, oldest comment first."""

    id: int
    subject: str
    status: str
    requester_id: int
    requester_name: str
    created_at: datetime
    url: str
    comments: tuple[Comment, ...] = ()
    requester_email: str = ""
    author_names: tuple[str, ...] = ()  # the names of everyone who commented (agents, CCs, requester)
    requester_locale: str = ""  # the requester's Zendesk locale ("de", "en-US"); "" when unknown

    @property
    def requester_first_name(self) -> str:
        parts = self.requester_name.split()
        return parts[0] if parts else "customer"

    @property
    def latest_customer_comment(self) -> Comment | None:
        """The newest public comment from the customer's side (`Comment.by_customer`): the
        message drafts answer. A CC'd colleague's follow-up counts, as in training data."""
        for comment in reversed(self.comments):
            if comment.public and comment.by_customer:
                return comment
        return None


@dataclass(frozen=True)
class Agent:
    """A person who may answer tickets in the ticket system (a Zendesk agent or admin)."""

    id: int
    name: str
    email: str


@dataclass(frozen=True)
class ChatUser:
    """A chat (Slack) user as the bot sees them: ``email`` is "" when the app may not read it."""

    id: str
    name: str
    email: str


@dataclass(frozen=True)
class TicketChange:
    """One row of the incremental export: enough to decide whether to queue the ticket."""

    id: int
    status: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DraftResult:
    """What one model produced for one prompt: text, or an error that explains why not."""

    model: str
    text: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_version: str | None = None  # the adapter version (``adapters/NAME/VERSION``); None: untuned
    prompt: str | None = None  # the exact prompt the draft continues

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.text and self.text.strip())


@dataclass(frozen=True, slots=True)  # a year holds ~438,000 of them
class Vote:
    ticket_id: int
    draft_id: str
    model: str
    rater: str
    score: int
    source: str
    voted_at: datetime
    reason: str | None = None  # a VOTE_REASONS code, only on a negative vote
    reason_note: str | None = None  # the agent's own words, with reason "other"
    model_version: str | None = None  # the draft's adapter version; None: untuned or not recorded

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"score must be 1-5, got {self.score!r}")
        if self.source not in VOTE_SOURCES:
            raise ValueError(f"source must be one of {VOTE_SOURCES}, got {self.source!r}")
        if self.reason is not None and self.reason not in VOTE_REASONS:
            raise ValueError(f"reason must be one of {tuple(VOTE_REASONS)}, got {self.reason!r}")


@dataclass(frozen=True, slots=True)
class DraftOutcome:
    """How one draft compares with the reply the agent actually sent the customer: Zendesk's
    acceptance and edit rate, measured per blind model."""

    ticket_id: int
    draft_id: str
    model: str
    reply_comment_id: int  # the agent's first public reply after the message the draft answered
    sent: bool  # this draft was the one sent to Zendesk from Slack
    chrf: float  # chrF of the draft against that reply, 0-100
    edit_distance: float  # normalised Levenshtein distance, 0 = the same text, 1 = nothing alike
    replied_at: datetime


def utcnow() -> datetime:
    """The services' default clock: now, time-zone aware, in UTC."""
    return datetime.now(UTC)


# ---- the bot's records: a durable job queue, and blind draft rounds in Slack threads ----------

JOB_QUEUED = "queued"
JOB_RUNNING = "running"
JOB_DONE = "done"
JOB_FAILED = "failed"

ROUND_GENERATING = "generating"
ROUND_POSTED = "posted"


@dataclass(frozen=True)
class Job:
    """One queued request to draft a ticket. ``attempts`` counts the claims so far."""

    id: int
    ticket_id: int
    source: str
    attempts: int
    status: str
    created_at: datetime
    not_before: datetime
    last_error: str | None = None


@dataclass(frozen=True)
class RoundRecord:
    """One round of blind drafts for one customer message (``comment_id``) of a ticket."""

    id: str
    ticket_id: int
    comment_id: int
    number: int  # 1 for a ticket's first round, then 2, 3... for each new customer message
    status: str  # ROUND_GENERATING until every draft is posted, then ROUND_POSTED
    notices_posted: tuple[str, ...] = ()  # the notices already in the thread ("new_round", "failures")
    # The customer's language (ISO 639-1), decided when the round was created; None in rounds stored
    # before languages were recorded: they read as `[languages] default`.
    language: str | None = None

    @property
    def posted(self) -> bool:
        return self.status == ROUND_POSTED


@dataclass(frozen=True)
class DraftRecord:
    id: str
    ticket_id: int
    round_id: str
    round_number: int
    label: str
    model: str
    text: str | None
    error: str | None
    channel: str | None
    slack_ts: tuple[str, ...]  # one draft may span several messages; the last one holds the buttons
    sent_to_zendesk_by: str | None
    # What the draft came from (None in drafts stored before these were recorded):
    model_version: str | None = None  # the adapter version, e.g. "20260105-093000-dpo-1a2b3c4d"
    prompt: str | None = None  # the exact prompt the model continued
    comment_id: int | None = None  # the customer message the round answers
    language: str | None = None  # its round's language; None: recorded before languages were

    @property
    def generated(self) -> bool:
        """The model's answer is recorded: a text, or the error that explains why there is none."""
        return self.text is not None or self.error is not None

    @property
    def vote_ts(self) -> str | None:
        return self.slack_ts[-1] if self.slack_ts else None


SEND_PENDING = "pending"  # recorded before the Zendesk call: the outcome is not known yet
SEND_SENT = "sent"
SEND_FAILED = "failed"  # Zendesk did not add the comment: the draft may be sent again


@dataclass(frozen=True)
class SendRecord:
    """One agent's send of a draft into its ticket, recorded before Zendesk is asked, so that a
    process killed during the call can find out at its next start whether the comment was added.

    ``body_sha256`` identifies the comment's text in Zendesk; ``author_id`` is the Zendesk agent
    it was sent as (None: the API user); ``comment_id`` is Zendesk's id once known.
    ``edited_text`` is the agent's own text (placeholders filled) while an edited send is not known
    to have gone out: a send that fails reopens with it, so the agent's edits are not lost.
    """

    id: str
    ticket_id: int
    round_id: str
    draft_id: str
    user: str  # the Slack user who sent it
    state: str
    public: bool
    edited: bool
    body_sha256: str
    started_at: datetime
    author_id: int | None = None
    comment_id: int | None = None
    finished_at: datetime | None = None
    error: str | None = None
    edited_text: str | None = None

    @property
    def counts(self) -> bool:
        """Sent, or possibly sent: a further send of the round needs the agent's confirmation."""
        return self.state in (SEND_PENDING, SEND_SENT)


def round_id_for(ticket_id: int, round_number: int) -> str:
    return f"t{ticket_id}r{round_number}"


def draft_id_for(ticket_id: int, round_number: int, label: str) -> str:
    return f"{round_id_for(ticket_id, round_number)}{label}"


# ---- marks on the bot's Slack messages: Slack has no idempotency key --------------------------

MARK_TICKET = "draftdesk_ticket"  # the parent message that opens a ticket's thread
MARK_DRAFT = "draftdesk_draft"  # one message of a draft (a long draft spans several)
MARK_NOTICE = "draftdesk_notice"  # a notice in a round ("1 of 3 models failed", "round 2")


@dataclass(frozen=True)
class MessageMark:
    """What one posted message is, carried in Slack's message metadata (``event_type`` and a flat
    ``event_payload`` of strings), so that after a crash the message is found instead of posted
    again. Equal marks name the same message."""

    event_type: str
    payload: tuple[tuple[str, str], ...]  # sorted (key, value) pairs: hashable, comparable

    @classmethod
    def of(cls, event_type: str, **payload: object) -> MessageMark:
        return cls(event_type, tuple(sorted((k, str(v)) for k, v in payload.items())))

    @classmethod
    def parent(cls, ticket_id: int) -> MessageMark:
        return cls.of(MARK_TICKET, ticket_id=ticket_id)

    @classmethod
    def draft_part(cls, ticket_id: int, draft_id: str, part: int) -> MessageMark:
        return cls.of(MARK_DRAFT, ticket_id=ticket_id, draft_id=draft_id, part=part)

    @classmethod
    def notice(cls, ticket_id: int, round_id: str, notice: str) -> MessageMark:
        return cls.of(MARK_NOTICE, ticket_id=ticket_id, round_id=round_id, notice=notice)

    def as_payload(self) -> dict[str, str]:
        return dict(self.payload)

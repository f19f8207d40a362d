"""Domain types shared by every layer. Pure data: no I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

SCORES = (1, 2, 3, 4, 5)
NEGATIVE_SCORES = frozenset({1, 2})  # the study: 1-2 negative, 3-5 positive
VOTE_SOURCES = ("button", "reaction", "import")
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

    @property
    def requester_first_name(self) -> str:
        parts = self.requester_name.split()
        return parts[0] if parts else "customer"

    @property
    def latest_requester_comment(self) -> Comment | None:
        """The newest public comment written by the requester: the message drafts answer."""
        for comment in reversed(self.comments):
            if comment.public and comment.author_is_requester:
                return comment
        return None


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

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.text and self.text.strip())


@dataclass(frozen=True)
class Vote:
    ticket_id: int
    draft_id: str
    model: str
    rater: str
    score: int
    source: str
    voted_at: datetime

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"score must be 1-5, got {self.score!r}")
        if self.source not in VOTE_SOURCES:
            raise ValueError(f"source must be one of {VOTE_SOURCES}, got {self.source!r}")

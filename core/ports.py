"""The contracts the layers meet at: what the bot needs from a model runtime and from a ticket
system, and the errors that belong to those contracts rather than to one adapter.

Adapters (`models/`, `integrations/`) implement them; services (`bot/`) depend on them only, so a
test can hand a service an in-memory double.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from core.domain import DraftResult, Ticket


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


class GatewayError(Exception):
    """An upstream service (ticket system, chat) could not do what was asked."""


class TicketNotFound(GatewayError):
    """The ticket does not exist (any more): deleted, merged away, or a wrong id. Not retried."""


class UpstreamUnavailable(GatewayError):
    """The upstream could not be used now: outage, rate limit, credentials. Says what to check."""

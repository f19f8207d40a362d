"""Question–answer examples from a ticket's public conversation, in the bot's prompt format. Pure.

Each example is ``prompt`` + ``completion``: the prompt is exactly what the bot sends a model at
draft time (``core.prompt.build_prompt``: instruction, subject, the conversation so far, ending with
``Agent:``) and the completion is the agent's real public answer. Two modes:

- ``first``: one example per ticket: the customer's question (everything before the first agent
  answer) and that first answer. The study's set-up.
- ``multi_turn``: one example per agent answer that follows a customer message, each with the
  whole conversation before it as context.

A ticket whose customer never got a public agent answer gives no example (unanswered).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from core.domain import Comment, Ticket
from core.prompt import build_prompt

PairMode = Literal["first", "multi_turn"]
# (the ticket so far, the token counter, its language) → the passages for its prompt
SourceFinder = Callable[[Ticket, Callable[[str], int], str | None], Sequence[str]]
"""The passages for a ticket's prompt, counted with the given tokenizer (a grounded model's)."""
PAIR_MODES: tuple[PairMode, ...] = ("first", "multi_turn")
Role = Literal["customer", "agent"]


@dataclass(frozen=True)
class Turn:
    """One cleaned, redacted public comment."""

    role: Role
    text: str


@dataclass(frozen=True)
class Conversation:
    ticket_id: int
    subject: str
    turns: tuple[Turn, ...]
    language: str | None = None  # the customer's (ISO 639-1): decided once per ticket, at export


@dataclass(frozen=True)
class Example:
    ticket_id: int
    prompt: str
    completion: str
    context: tuple[Turn, ...]  # the turns the prompt was built from (to rebuild it for another budget)
    subject: str
    sources: tuple[str, ...] = ()  # the Help Center passages in the prompt (grounded datasets only)
    language: str | None = None  # the customer's language, as its ticket's

    @property
    def question(self) -> str:
        """The subject and the customer messages this answer replies to: what duplicates are judged on."""
        since = max((i + 1 for i, turn in enumerate(self.context) if turn.role == "agent"), default=0)
        asked = [turn.text for turn in self.context[since:] if turn.role == "customer"]
        return "\n".join([self.subject, *asked])


def answer_positions(turns: Sequence[Turn], mode: PairMode) -> list[int]:
    """Indexes of the agent turns that become completions (empty: the ticket is unanswered)."""
    positions = []
    customer_seen = False
    for index, turn in enumerate(turns):
        if turn.role == "customer":
            customer_seen = True
        elif customer_seen and turns[index - 1].role == "customer":
            positions.append(index)
            if mode == "first":
                break
    return positions


def render_prompt(
    subject: str,
    context: Sequence[Turn],
    count_tokens: Callable[[str], int],
    max_tokens: int,
    product_name: str,
    ticket_id: int = 0,
    sources: Sequence[str] = (),
    language: str | None = None,
) -> str:
    """The bot's prompt for a conversation that ends before an agent answer (in the customer's
    ``language``, as the bot asks for it; English prompts are as they always were)."""
    return build_prompt(
        conversation_ticket(subject, context, ticket_id),
        count_tokens,
        max_tokens,
        product_name=product_name,
        sources=sources,
        language=language,
    )


def conversation_ticket(subject: str, context: Sequence[Turn], ticket_id: int = 0) -> Ticket:
    """The conversation as the bot would see the ticket: what prompts and retrieval are built from."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    comments = tuple(
        Comment(
            id=index + 1,
            author_id=1 if turn.role == "customer" else 2,
            body=turn.text,
            public=True,
            created_at=epoch,
            author_is_requester=turn.role == "customer",
        )
        for index, turn in enumerate(context)
    )
    return Ticket(
        id=ticket_id,
        subject=subject,
        status="solved",
        requester_id=1,
        requester_name="",
        created_at=epoch,
        url="",
        comments=comments,
    )


def conversation_examples(
    conversation: Conversation,
    mode: PairMode,
    count_tokens: Callable[[str], int],
    max_prompt_tokens: int,
    product_name: str,
    find_sources: SourceFinder | None = None,
) -> list[Example]:
    """The examples of one ticket, oldest answer first. With ``find_sources`` each prompt is grounded:
    the passages are looked up with the conversation before the answer, never the answer itself."""
    if mode not in PAIR_MODES:
        raise ValueError(f"pair mode must be one of {PAIR_MODES}, got {mode!r}")
    turns = conversation.turns
    examples = []
    for position in answer_positions(turns, mode):
        context = turns[:position]
        sources: tuple[str, ...] = ()
        if find_sources is not None:
            ticket = conversation_ticket(conversation.subject, context, conversation.ticket_id)
            sources = tuple(find_sources(ticket, count_tokens, conversation.language))
        prompt = render_prompt(
            conversation.subject,
            context,
            count_tokens,
            max_prompt_tokens,
            product_name,
            conversation.ticket_id,
            sources,
            conversation.language,
        )
        examples.append(
            Example(
                ticket_id=conversation.ticket_id,
                prompt=prompt,
                completion=" " + turns[position].text,
                context=tuple(context),
                subject=conversation.subject,
                sources=sources,
                language=conversation.language,
            )
        )
    return examples

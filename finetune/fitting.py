"""Fit examples to a model's sequence length, counted by the model's own tokenizer. Pure.

``prepare`` renders prompts with a generous, approximate budget. Training needs each prompt plus
its answer within ``max_length`` tokens of the model being trained, so a prompt that is too long
is rendered again by ``core.prompt.build_prompt`` with the room that is left: the oldest comments
go first and the customer's newest message stays, exactly as the bot cuts prompts at draft time;
a grounded row's Help Center passages (``sources``) stay, as they do in the bot's prompt.
Articles are split at paragraph (then line, then word) boundaries into pieces that fit.

A KTO or DPO row (``finetune feedback``) holds the exact prompt a model drafted from, not the
conversation: ``fit_preference_prompt`` keeps it when it fits and otherwise asks for the bot's
prompt rebuilt with less room (``shortened_prompt``: the ticket as it stood, cut by
``core.prompt.build_prompt``); its completions stay whole. TRL's preference trainers drop a row whose
prompt alone fills ``max_length`` and cut the end off one that overflows, so training keeps only
the rows that fit (``preference_rows_that_fit``) and refuses a set in which none does
(:class:`NothingFits`), before TRL is called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.domain import Ticket
from core.prompt import build_prompt, prompt_language, prompt_sources
from core.ticket_text import ticket_as_models_read_it
from finetune.pairs import Turn, render_prompt

MIN_PROMPT_TOKENS = 32
SETTING = "[finetune.train] max_length"


class NothingFits(ValueError):
    """No training row fits the sequence length; the message (one line) names the setting."""

    def __init__(self, dataset: Path, max_length: int, needed: str, fix: str = "") -> None:
        super().__init__(
            f"{dataset}: no training row fits in {SETTING} = {max_length} tokens ({needed}): raise "
            f"max_length (for one model: max_length in its [models.finetune]){fix}"
        )


def sequence_tokens(prompt: str, completion: str, count_tokens: Callable[[str], int]) -> int:
    """The tokens of a training row: prompt, completion and the EOS after it (as TRL builds it)."""
    return count_tokens(prompt + completion) + 1


def preference_completions(row: dict[str, Any]) -> list[str]:
    """A DPO row's chosen and rejected, or a KTO row's completion."""
    return [row[key] for key in ("chosen", "rejected", "completion") if key in row]


def tokens_needed(prompt: str, completions: Sequence[str], count_tokens: Callable[[str], int]) -> int:
    """The longest sequence the row makes (DPO: prompt with chosen, prompt with rejected)."""
    return max(sequence_tokens(prompt, completion, count_tokens) for completion in completions)


def fit_preference_prompt(
    prompt: str,
    completions: Sequence[str],
    count_tokens: Callable[[str], int],
    max_length: int,
    rebuild: Callable[[int], str | None],
) -> str | None:
    """``prompt`` when it fits ``max_length`` with each completion whole, else ``rebuild(room)`` (a
    prompt of at most ``room`` tokens) for the room the longest completion leaves, checked again as
    one sequence; None when it cannot fit (a completion alone leaves no room for a prompt)."""
    if tokens_needed(prompt, completions, count_tokens) <= max_length:
        return prompt
    room = max_length - max(count_tokens(completion) for completion in completions) - 1
    while room >= MIN_PROMPT_TOKENS:
        shorter = rebuild(room)
        if shorter is None:
            return None
        over = tokens_needed(shorter, completions, count_tokens) - max_length
        if over <= 0:
            return shorter
        room -= over  # tokens merge across the seam: a few less
    return None


def shortened_prompt(
    ticket: Ticket,
    comment_id: int | None,
    recorded: str,
    known_names: Iterable[str],
    count_tokens: Callable[[str], int],
    max_tokens: int,
    product_name: str,
) -> str | None:
    """The bot's prompt for ``ticket`` as it stood when the message ``comment_id`` came, within
    ``max_tokens``: read as the models read it (names redacted) and cut by ``build_prompt`` (the
    oldest comments first, then the middle of the customer's message), with the Help Center
    passages of the ``recorded`` prompt kept. None when the message is not in the ticket or nothing fits."""
    end = next((i for i, comment in enumerate(ticket.comments) if comment.id == comment_id), None)
    if end is None:
        return None
    readable = ticket_as_models_read_it(replace(ticket, comments=ticket.comments[: end + 1]), known_names)
    try:
        return build_prompt(
            readable,
            count_tokens,
            max_tokens,
            product_name,
            prompt_sources(recorded),
            language=prompt_language(recorded),
        )
    except ValueError:
        return None


def preference_rows_that_fit(
    rows: list[dict[str, Any]], count_tokens: Callable[[str], int], max_length: int
) -> tuple[list[dict[str, Any]], int | None]:
    """The rows whose prompt and every completion fit ``max_length``, and the fewest tokens a row
    left out needs (None: none left out)."""
    kept, shortest = [], None
    for row in rows:
        needed = tokens_needed(row["prompt"], preference_completions(row), count_tokens)
        if needed <= max_length:
            kept.append(row)
        else:
            shortest = needed if shortest is None else min(shortest, needed)
    return kept, shortest


def fit_pair(
    row: dict[str, Any], count_tokens: Callable[[str], int], max_length: int, product_name: str
) -> dict[str, str] | None:
    """``{"prompt", "completion"}`` within ``max_length`` tokens; None when the answer alone is too long."""
    prompt, completion = row["prompt"], row["completion"]
    if count_tokens(prompt + completion) + 1 <= max_length:  # +1: the EOS after the answer
        return {"prompt": prompt, "completion": completion}
    room = max_length - count_tokens(completion) - 1
    if room < MIN_PROMPT_TOKENS:
        return None
    context = [Turn(t["role"], t["text"]) for t in row.get("context") or []]
    try:
        prompt = render_prompt(
            row.get("subject") or "",
            context,
            count_tokens,
            room,
            product_name,
            sources=row.get("sources") or (),
            language=row.get("language"),
        )
    except ValueError:
        return None
    return {"prompt": prompt, "completion": completion}


def _split(text: str, separator: str, count_tokens: Callable[[str], int], limit: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for part in text.split(separator):
        candidate = f"{current}{separator}{part}" if current else part
        if count_tokens(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        if count_tokens(part) <= limit:
            current = part
        else:
            finer = {"\n\n": "\n", "\n": " "}.get(separator)
            if finer is None:  # one word over the limit: cut it by characters
                pieces.extend(part[i : i + limit] for i in range(0, len(part), limit))
                current = ""
            else:
                *done, current = _split(part, finer, count_tokens, limit) or [""]
                pieces.extend(done)
    if current:
        pieces.append(current)
    return [p.strip() for p in pieces if p.strip()]


def article_chunks(article: dict[str, Any], count_tokens: Callable[[str], int], max_length: int) -> list[str]:
    """The article (title first) as plain-text pieces of at most ``max_length - 1`` tokens each."""
    text = f"{article.get('title') or ''}\n\n{article.get('text') or ''}".strip()
    return _split(text, "\n\n", count_tokens, max_length - 1) if text else []

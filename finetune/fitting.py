"""Fit examples to a model's sequence length, counted by the model's own tokenizer. Pure.

``prepare`` renders prompts with a generous, approximate budget. Training needs each prompt plus
its answer within ``max_length`` tokens of the model being trained, so a prompt that is too long
is rendered again by ``core.prompt.build_prompt`` with the room that is left: the oldest comments
go first and the customer's newest message stays, exactly as the bot cuts prompts at draft time;
a grounded row's Help Center passages (``sources``) stay, as they do in the bot's prompt.
Articles are split at paragraph (then line, then word) boundaries into pieces that fit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from finetune.pairs import Turn, render_prompt

MIN_PROMPT_TOKENS = 32


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

"""Build the plain-text prompt for a ticket, cut to a model's token budget. Pure: no I/O.

The draft models are base / LoRA-tuned causal LMs, not chat models, so the prompt is a transcript
that ends with ``Agent:`` for the model to continue:

    You are a customer support agent for Parcelo. ...

    Subject: Can't log in

    Customer: Hi, I can't log in since this morning.

    Agent: Have you tried resetting your password?

    Customer: Yes, the reset link never arrives.

    Agent:

Use ``STOP_SEQUENCES`` as the models' stop strings so a draft ends before the next turn.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from core.domain import Comment, Ticket
from core.languages import LANGUAGE_NAMES, language_name

CUSTOMER = "Customer:"
AGENT = "Agent:"
STOP_SEQUENCES = ("\nCustomer:", "\nAgent:")
TURN_SEPARATOR = "\n\n"
TRUNCATION_MARKER = "[…]"
MAX_SUBJECT_CHARS = 250
_PROBE_CHARS_PER_TOKEN = 16  # well above real text's 3-5 characters per token

INSTRUCTION = (
    "You are a customer support agent for {product}. Write the agent's next reply to the customer "
    "in the ticket below. Be accurate, friendly and concise. Do not invent facts, prices or policies."
)

# A ticket not in English: the draft follows the customer (English prompts stay as they were).
REPLY_LANGUAGE = "Write the reply in {language}, the customer's language."

SOURCES_HEADING = "Help Center passages that may answer it (use them only where they apply):"

_EXTRA_BLANK_LINES = re.compile(r"\n{3,}")


def _normalize(text: str) -> str:
    """Unify line breaks and squeeze blank lines: runs of them cost tokens and carry nothing."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _EXTRA_BLANK_LINES.sub("\n\n", text).strip()


def _role(comment: Comment) -> str:
    return CUSTOMER if comment.by_customer else AGENT


def turn(role: str, text: str) -> str:
    """One turn of the transcript: ``Customer: …`` or ``Agent: …`` (the role word, a space, the text)."""
    return f"{role} {text}".rstrip()


def transcript(parts: Sequence[str]) -> str:
    """Turns (and any heading lines) joined as the models read them, ending with ``Agent:``."""
    return TURN_SEPARATOR.join([*parts, AGENT])


def _turn(comment: Comment, body: str | None = None) -> str:
    return turn(_role(comment), _normalize(comment.body) if body is None else body)


def _shorten(text: str, keep: int) -> str:
    """``text`` with only its first and last characters, ``keep`` in all, and the marker between."""
    if keep >= len(text):
        return text
    head = (keep + 1) // 2
    tail = keep - head
    end = text[len(text) - tail :] if tail else ""
    return f"{text[:head].rstrip()}\n{TRUNCATION_MARKER}\n{end.lstrip()}".strip()


def _count_or_extrapolate(count_tokens: Callable[[str], int], text: str, max_tokens: int) -> int:
    """Tokens in ``text``, or for a text far over the budget an extrapolation from its beginning.

    Only estimates use this (every prompt returned is counted in full), and a text whose first
    ``_PROBE_CHARS_PER_TOKEN * (max_tokens + 1)`` characters are already over the budget cannot fit,
    so a 1 MB message costs one small count instead of tokenizing a megabyte.
    """
    probe = _PROBE_CHARS_PER_TOKEN * (max_tokens + 1)
    if len(text) <= probe:
        return count_tokens(text)
    head = count_tokens(text[:probe])
    if head <= max_tokens:
        return count_tokens(text)
    return head * len(text) // probe


def _render(instruction: str, subject: str, turns: Sequence[str]) -> str:
    return transcript([instruction, f"Subject: {subject}", *turns])


def _largest_fitting(length: int, fits: Callable[[int], bool], guess: int) -> int:
    """Largest ``k`` in [0, length] with ``fits(k)``, given ``fits(0)``.

    Gallops up from ``guess`` then bisects, so a 1 MB text costs a few dozen checks of prompts
    around the budget's size, never one per character. ``fits`` need not be perfectly monotonic
    (token counts are not, quite): the answer is always a ``k`` that was checked and fits.
    """
    lo, hi = 0, length + 1  # fits(lo) is known; hi is "known not to fit" or past the end
    k = max(1, min(length, guess))
    while k < hi:
        if fits(k):
            lo = k
            if k == length:
                return length
            k = min(length, k * 2)
        else:
            hi = k
            break
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def prompt_language(prompt: str) -> str | None:
    """The language a prompt from :func:`build_prompt` asks the reply in (None: English, or not said),
    as ``language`` that builds it again with the same line."""
    head = prompt.split(f"{TURN_SEPARATOR}Subject: ", 1)[0]
    for code in LANGUAGE_NAMES:
        if code != "en" and REPLY_LANGUAGE.format(language=language_name(code)) in head:
            return code
    return None


def prompt_sources(prompt: str) -> tuple[str, ...]:
    """The Help Center passages a prompt from :func:`build_prompt` holds (empty: not grounded), as
    ``sources`` that build it again with the same lines."""
    head = prompt.split(f"{TURN_SEPARATOR}Subject: ", 1)[0]
    if f"\n{SOURCES_HEADING}\n" not in head:
        return ()
    lines = head.split(f"\n{SOURCES_HEADING}\n", 1)[1].split("\n")
    return tuple(line[2:] for line in lines if line.startswith("- "))


def build_prompt(
    ticket: Ticket,
    count_tokens: Callable[[str], int],
    max_tokens: int,
    product_name: str = "our product",
    sources: Sequence[str] = (),
    language: str | None = None,
) -> str:
    """The prompt for ``ticket``, at most ``max_tokens`` tokens as ``count_tokens`` counts them.

    ``language``: the customer's (ISO 639-1); any but English (or None) adds one line to the
    instruction asking for the reply in that language.

    ``sources`` (a grounded model's Help Center passages, already fitted to their own budget) follow
    the instruction, one line each; they are kept like the instruction while the conversation is cut.

    Internal notes (``public=False``) never appear. When the conversation is too long, the
    oldest comments go first; the subject and the newest customer message (the one the draft
    answers) always stay. If that message alone is too long, its beginning and end are kept with
    ``[…]`` between them. Raises ValueError when even the instruction, the subject (capped at
    ``MAX_SUBJECT_CHARS``) and an emptied message do not fit.
    """
    instruction = INSTRUCTION.format(product=product_name)
    if language and language != "en":
        instruction = f"{instruction} {REPLY_LANGUAGE.format(language=language_name(language))}"
    if sources:
        lines = "\n".join(f"- {' '.join(source.split())}" for source in sources)
        instruction = f"{instruction}\n{SOURCES_HEADING}\n{lines}"
    subject = " ".join(ticket.subject.split()) or "(no subject)"
    if len(subject) > MAX_SUBJECT_CHARS:
        subject = subject[:MAX_SUBJECT_CHARS].rstrip() + "…"
    public = [comment for comment in ticket.comments if comment.public]
    anchor = ticket.latest_customer_comment or (public[-1] if public else None)

    def fits(turns: Sequence[str]) -> bool:
        return count_tokens(_render(instruction, subject, turns)) <= max_tokens

    # Count every turn once; a prompt's count is about the sum of its parts (checked before use).
    turns = [_turn(comment) for comment in public]
    per_call = count_tokens("")  # e.g. the BOS a model tokenizer adds to every count
    cost = [_count_or_extrapolate(count_tokens, turn, max_tokens) - per_call for turn in turns]
    fixed = count_tokens(_render(instruction, subject, []))
    if anchor is None:
        if fixed > max_tokens:
            raise ValueError(f"max_tokens={max_tokens} is too small for the instruction and the subject")
        anchor_at = len(turns)  # no anchor: every comment may go
    else:
        anchor_at = next(i for i, comment in enumerate(public) if comment is anchor)

    # Drop the oldest comments first, never the anchor: estimate, then verify (and drop more).
    kept = [i for i in range(len(turns)) if i != anchor_at]
    estimate = fixed + sum(cost)
    while kept and estimate > max_tokens:
        estimate -= cost[kept.pop(0)]

    def selection(indexes: Sequence[int]) -> list[str]:
        return [turns[i] for i in sorted({*indexes, anchor_at}) if i < len(turns)]

    while True:
        if estimate <= max_tokens and fits(selection(kept)):
            return _render(instruction, subject, selection(kept))
        if not kept:
            break
        estimate -= cost[kept.pop(0)]
    if anchor is None:
        raise ValueError(f"max_tokens={max_tokens} is too small for the instruction and the subject")

    # The newest customer message alone is too long: keep its beginning and end.
    body = _normalize(anchor.body)

    def anchor_fits(keep: int) -> bool:
        return fits([_turn(anchor, _shorten(body, keep))])

    if not anchor_fits(0):
        raise ValueError(
            f"max_tokens={max_tokens} is too small for the instruction, the subject "
            "and the customer's message"
        )
    # Guess from the message's own characters per token; the search corrects the guess.
    room = max_tokens - count_tokens(_render(instruction, subject, [_turn(anchor, TRUNCATION_MARKER)]))
    chars_per_token = len(body) / max(1, cost[anchor_at])
    keep = _largest_fitting(len(body), anchor_fits, int(room * chars_per_token))
    return _render(instruction, subject, [_turn(anchor, _shorten(body, keep))])

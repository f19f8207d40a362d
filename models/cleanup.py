"""Turn a model's raw continuation into a draft: pure functions, no model or tokenizer needed."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence

# A sentence ends at . ! or ? (possibly several, possibly followed by closing quotes or brackets)
# followed by whitespace or the end of the text; "3.5" or "example.com" are not sentence ends.
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]»]*(?=\s|$)")


def completion_ids(sequence: Sequence[int], prompt_length: int, end_ids: Collection[int]) -> list[int]:
    """The tokens generated after the prompt, up to (not including) the first end token.

    ``end_ids`` holds the eos id(s) and the pad id: in a batch, rows that finished early are
    padded after their eos, and left padding is already inside ``prompt_length``.
    """
    new = list(sequence[prompt_length:])
    for index, token in enumerate(new):
        if token in end_ids:
            return new[:index]
    return new


def find_stop(text: str, stops: Iterable[str]) -> int | None:
    """Index of the earliest occurrence of any stop string in ``text``, or None."""
    positions = [pos for stop in stops if stop and (pos := text.find(stop)) >= 0]
    return min(positions) if positions else None


def cut_at_stop(text: str, stops: Iterable[str]) -> str:
    """``text`` up to the earliest stop string (the stop string itself removed)."""
    # U+FFFD comes from a multi-byte character cut between tokens: never show it to an agent.
    text = text.replace("\ufffd", "")
    pos = find_stop(text, stops)
    return text if pos is None else text[:pos]


def trim_unfinished_sentence(text: str) -> str:
    """Drop a trailing sentence that the token limit cut off.

    Keeps the text up to the last sentence end (``.``, ``!``, ``?``) or the last line break,
    whichever comes later; when there is neither, the text is returned unchanged rather than
    emptied. Only call this when generation stopped at the token limit: a reply that ended on its
    own (``Best regards,\\nAnna``) is complete even without a final full stop.
    """
    stripped = text.rstrip()
    if not stripped:
        return ""
    last_end = -1
    for match in _SENTENCE_END.finditer(stripped):
        last_end = match.end()
    last_break = stripped.rfind("\n")
    cut = max(last_end, last_break)
    if cut <= 0:
        return stripped
    kept = stripped[:cut].rstrip()
    return kept if kept else stripped


# Control characters other than tab and line breaks: byte-level tokens can decode to them, and
# they are noise in Slack and Zendesk.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_completion(text: str, stops: Iterable[str] = (), truncated: bool = False) -> str:
    """Cut at the first stop string, strip, and (if ``truncated``) trim an unfinished sentence.

    ``truncated`` means generation ended at ``max_new_tokens`` and not at eos or a stop string.
    """
    # U+FFFD comes from a multi-byte character cut between tokens: never show it to an agent.
    text = _CONTROL.sub("", text.replace("\ufffd", ""))
    pos = find_stop(text, stops)
    if pos is not None:
        text = text[:pos]
        truncated = False  # a stop string ended the reply: nothing was cut off
    text = text.strip()
    if truncated:
        text = trim_unfinished_sentence(text)
    return text

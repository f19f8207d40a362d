"""Votes as CSV or JSON Lines, both ways, so external ratings (the study's own) can be re-analysed.

A file also carries each vote's customer language (``language``, the ISO 639-1 code of its draft's
round), so `report --input` splits the ratings by language as the report on the store does; a row
without one (an older export, the study's ratings) counts as the report's default language."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TextIO

from core.domain import SCORES, VOTE_REASONS, Vote
from core.languages import is_language_code

COLUMNS = (
    "ticket_id",
    "draft_id",
    "model",
    "model_version",
    "rater",
    "score",
    "source",
    "voted_at",
    "reason",
    "reason_note",
    "language",
)
REQUIRED = ("model", "score")


class VotesFileError(ValueError):
    pass


# A row without ``voted_at`` (the study's ratings) counts as cast at this moment: in no recent period.
UNDATED = datetime(1970, 1, 1, tzinfo=UTC)


def vote_row(vote: Vote) -> dict[str, object]:
    """A vote as one flat record: an export row, and how the store keeps it."""
    return {
        "ticket_id": vote.ticket_id,
        "draft_id": vote.draft_id,
        "model": vote.model,
        "model_version": vote.model_version,
        "rater": vote.rater,
        "score": vote.score,
        "source": vote.source,
        "voted_at": vote.voted_at.astimezone(UTC).isoformat(),
        "reason": vote.reason,
        "reason_note": vote.reason_note,
    }


def write_votes(
    votes: Iterable[Vote], out: TextIO, fmt: str, languages: Mapping[str, str] | None = None
) -> int:
    """Writes the votes; ``languages`` (draft id → language) fills the ``language`` column."""
    count = 0
    known = languages or {}

    def row(vote: Vote) -> dict[str, object]:
        return vote_row(vote) | {"language": known.get(vote.draft_id)}

    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for vote in votes:
            writer.writerow(row(vote))
            count += 1
    elif fmt == "jsonl":
        for vote in votes:
            out.write(json.dumps(row(vote), ensure_ascii=False) + "\n")
            count += 1
    else:
        raise ValueError(f"unknown format {fmt!r}: use csv or jsonl")
    return count


def read_votes(text: str, name: str = "input") -> list[Vote]:
    """Reads CSV (header row) or JSON Lines; only `model` and `score` are required per row."""
    return read_votes_and_languages(text, name)[0]


def read_votes_and_languages(text: str, name: str = "input") -> tuple[list[Vote], dict[str, str]]:
    """The votes, and draft id → language for the rows that name one (ISO 639-1, lower case)."""
    stripped = text.lstrip("\ufeff").lstrip()
    rows = _jsonl_rows(stripped, name) if stripped.startswith("{") else _csv_rows(stripped, name)
    votes: list[Vote] = []
    languages: dict[str, str] = {}
    for line, row in rows:
        vote = _vote(row, line, name)
        votes.append(vote)
        language = str(row.get("language") or "").strip().lower()
        if language:
            if not is_language_code(language):
                raise VotesFileError(
                    f"{name}:{line}: language must be an ISO 639-1 code like de, got {language!r}"
                )
            languages[vote.draft_id] = language
    return votes, languages


def _csv_rows(text: str, name: str) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise VotesFileError(
            f"{name}: missing column(s) {', '.join(missing)}; expected a header like {','.join(COLUMNS)}"
        )
    yield from enumerate(reader, start=2)


def _jsonl_rows(text: str, name: str) -> Iterator[tuple[int, dict[str, object]]]:
    for index, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise VotesFileError(f"{name}:{index}: not valid JSON: {exc.msg}") from exc
        if not isinstance(row, dict):
            raise VotesFileError(f"{name}:{index}: each line must be a JSON object")
        yield index, row


def _vote(row: dict, line: int, name: str) -> Vote:
    model = str(row.get("model") or "").strip()
    if not model:
        raise VotesFileError(f"{name}:{line}: empty model")
    try:
        score = int(str(row.get("score", "")).strip())
    except ValueError:
        raise VotesFileError(f"{name}:{line}: score must be 1-5, got {row.get('score')!r}") from None
    if score not in SCORES:
        raise VotesFileError(f"{name}:{line}: score must be 1-5, got {score}")
    voted_raw = str(row.get("voted_at") or "").strip()
    try:
        voted_at = datetime.fromisoformat(voted_raw) if voted_raw else UNDATED
    except ValueError:
        raise VotesFileError(f"{name}:{line}: voted_at must be an ISO date/time, got {voted_raw!r}") from None
    if voted_at.tzinfo is None:
        voted_at = voted_at.replace(tzinfo=UTC)
    ticket_raw = str(row.get("ticket_id") or "0").strip()
    source = str(row.get("source") or "import").strip()
    reason = str(row.get("reason") or "").strip() or None
    if reason is not None and reason not in VOTE_REASONS:
        raise VotesFileError(
            f"{name}:{line}: reason must be one of {', '.join(VOTE_REASONS)}, got {reason!r}"
        )
    return Vote(
        ticket_id=int(ticket_raw) if ticket_raw.isdigit() else 0,
        draft_id=str(row.get("draft_id") or f"{name}:{line}"),
        model=model,
        rater=str(row.get("rater") or ""),
        score=score,
        source=source if source in ("button", "reaction", "import") else "import",
        voted_at=voted_at,
        model_version=str(row.get("model_version") or "").strip() or None,
        reason=reason,
        reason_note=str(row.get("reason_note") or "").strip() or None,
    )

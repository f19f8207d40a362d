"""The ratings per customer language: each model's Tables 1-2 rows within a language, and the paired
comparison against the baseline within each language that has enough rated tickets. Pure.

A team with a German and an English queue reads here which model helps which customers: a model
that only writes one language has rows in that language alone, and the baseline of a language is
the report's baseline when it drafted there, else that language's first untuned model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bot.reporting.comparisons import Comparison, choose_baseline, compare
from bot.reporting.model_versions import baseline_row, by_version
from bot.reporting.stats import ModelStats, model_stats
from core.domain import Vote

# Rated tickets a language needs before its models are compared with its baseline (`[languages]`).
DEFAULT_MIN_TICKETS = 10


@dataclass(frozen=True)
class LanguageSection:
    """One language's part of a report."""

    language: str
    tickets: int  # rated tickets in the language
    rows: Sequence[ModelStats]  # each model (version) with ratings in the language
    baseline: str | None
    comparisons: Sequence[Comparison]  # empty while the language has fewer than ``min_tickets``
    min_tickets: int

    @property
    def compared(self) -> bool:
        return self.tickets >= self.min_tickets


def round_of_draft(draft_id: str) -> str:
    """``t12r3B`` → ``t12r3``: the round a vote's draft belongs to (labels are one letter)."""
    return draft_id[:-1]


def vote_languages(
    votes: Sequence[Vote], round_language: Callable[[str], str | None], default: str
) -> dict[str, str]:
    """draft id → language for each vote, asking ``round_language`` once per round; a round recorded
    before languages were (None) counts as ``default``."""
    by_round: dict[str, str] = {}
    found: dict[str, str] = {}
    for vote in votes:
        round_id = round_of_draft(vote.draft_id)
        if round_id not in by_round:
            by_round[round_id] = round_language(round_id) or default
        found[vote.draft_id] = by_round[round_id]
    return found


def language_sections(
    votes: Sequence[Vote],
    languages: Mapping[str, str],
    models: Sequence[str],
    untuned: Sequence[str],
    baseline: str | None,
    min_tickets: int = DEFAULT_MIN_TICKETS,
) -> list[LanguageSection]:
    """One section per language with votes, by language code. ``languages``: draft id → language (a
    vote whose draft is not in it is left out); ``baseline``: the report's (a model name)."""
    grouped: dict[str, list[Vote]] = {}
    for vote in votes:
        language = languages.get(vote.draft_id)
        if language is not None:
            grouped.setdefault(language, []).append(vote)
    sections = []
    for language in sorted(grouped):
        in_language = grouped[language]
        drafted = {vote.model for vote in in_language}
        versioned, names = by_version(in_language, [m for m in models if m in drafted])
        rows = [row for row in model_stats(versioned, names) if row.n]
        rated = [row.model for row in rows]
        present = [m for m in models if m in drafted] or sorted(drafted)
        chosen = baseline if baseline in drafted else None
        chosen = choose_baseline(present, [m for m in untuned if m in drafted], chosen)
        row = baseline_row(chosen, rated)
        tickets = len({vote.ticket_id for vote in in_language})
        comparisons = (
            compare(versioned, rated, row)
            if row in rated and tickets >= min_tickets and len(rated) > 1
            else []
        )
        sections.append(LanguageSection(language, tickets, rows, row, comparisons, min_tickets))
    return sections

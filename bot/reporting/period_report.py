"""The report of a period from votes and reply outcomes: what `draftdesk report` prints and the demo
shows, built in one place (one row per model and adapter version, the paired comparison against
the baseline, the reasons for low ratings, how close drafts came to the reply sent)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

from bot.reporting.comparisons import analyse, choose_baseline
from bot.reporting.languages import DEFAULT_MIN_TICKETS, language_sections
from bot.reporting.model_versions import baseline_row, by_version
from bot.reporting.outcomes import OutcomeStats
from bot.reporting.reasons import top_reasons
from bot.reporting.report import Report, ReportExtras
from bot.reporting.stats import model_stats
from core.domain import Vote


class UnknownBaseline(ValueError):
    """The baseline asked for is none of the report's rows."""


def period_report(
    votes: Sequence[Vote],
    models: Sequence[str],
    untuned: Sequence[str],
    now: datetime,
    sent: Sequence[OutcomeStats] = (),
    since: date | None = None,
    until: date | None = None,
    baseline: str | None = None,
    languages: Mapping[str, str] | None = None,
    min_language_tickets: int = DEFAULT_MIN_TICKETS,
) -> Report:
    """``models``: the configured models in order ([] for a votes file: its own models, as voted);
    ``untuned``: those without an adapter (the default baseline); ``baseline``: asked for by name;
    ``languages``: draft id → the customer's language (None: no per-language part, as for a votes file)."""
    versioned, rows_named = by_version(votes, models)
    rows = model_stats(versioned, rows_named)
    names = [row.model for row in rows]
    if baseline and baseline_row(baseline, names) not in names:
        raise UnknownBaseline(f"--baseline {baseline!r} is not one of the models: {', '.join(names)}")
    chosen = baseline_row(choose_baseline(list(models) or names, list(untuned), baseline), names)
    analysis = analyse(versioned, names, chosen, now)
    reasons = top_reasons(versioned, names)
    sections = (
        language_sections(votes, languages, models, untuned, baseline, min_language_tickets)
        if languages is not None
        else []
    )
    return Report(rows, since, until, ReportExtras(analysis, reasons, sent, languages=sections))

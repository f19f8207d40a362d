"""Renders per-model statistics as text, Markdown, JSON or CSV. Pure."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from bot.reporting.outcomes import OutcomeStats
from bot.reporting.reasons import ReasonCount
from bot.reporting.stats import ModelStats
from core.domain import SCORES
from core.languages import language_name

if TYPE_CHECKING:  # the statistics (scipy, statsmodels) load only where a report computes them
    from bot.reporting.comparisons import Analysis, Comparison
    from bot.reporting.languages import LanguageSection
    from bot.reporting.promotion import Standing

FORMATS = ("text", "markdown", "json", "csv")


@dataclass(frozen=True)
class ReportExtras:
    """What a report or digest shows under Tables 1 and 2, each where computed."""

    analysis: Analysis | None = None  # the paired comparison, ranking, agreement and trend
    reasons: Sequence[ReasonCount] = ()  # why drafts rated 1-2 failed
    sent: Sequence[OutcomeStats] = ()  # how close each model's drafts came to the reply sent
    candidates: Sequence[Standing] = ()  # each running candidate adapter against the current one (digest)
    languages: Sequence[LanguageSection] = ()  # the ratings per customer language (from the store)


NO_EXTRAS = ReportExtras()


@dataclass(frozen=True)
class Report:
    """What a report shows: Tables 1 and 2 (``rows``) and, where computed, the extras."""

    rows: Sequence[ModelStats]
    since: date | None = None
    until: date | None = None
    extras: ReportExtras = NO_EXTRAS


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _period(since: date | None, until: date | None) -> str:
    return f"{since.isoformat() if since else 'beginning'} to {until.isoformat() if until else 'now'}"


def _ci(row: ModelStats) -> str:
    ci = row.positive_ci_pct
    return "–" if ci is None else f"{ci[0]:.1f}–{ci[1]:.1f}"


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "markdown":
        return render_markdown(report)
    if fmt == "text":
        return render_text(report)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def _pair(values: tuple[float, float] | None) -> list[float] | None:
    return list(values) if values else None


def comparison_dict(c: Comparison) -> dict:
    return {
        "model": c.model,
        "baseline": c.baseline,
        "n_pairs": c.n_pairs,
        "diff_positive_pct": c.diff_positive_pct,
        "diff_ci_pct": _pair(c.diff_ci_pct),
        "mcnemar_p": c.mcnemar_p,
        "wilcoxon_p": c.wilcoxon_p,
        "test": c.test,
        "verdict": c.verdict,
    }


def row_dict(row: ModelStats) -> dict:
    return {
        "model": row.model,
        "counts": {str(s): row.counts.get(s, 0) for s in SCORES},
        "n": row.n,
        "mean": None if row.mean is None else round(row.mean, 2),
        "negative_pct": row.negative_pct,
        "positive_pct": row.positive_pct,
        "positive_ci95_pct": list(row.positive_ci_pct) if row.positive_ci_pct else None,
    }


def languages_dict(sections: Sequence[LanguageSection]) -> dict:
    """``languages``: per ISO 639-1 code, each model's ratings in that language and, once the language
    has ``min_tickets`` rated tickets, the comparison with its baseline (null before)."""
    return {
        section.language: {
            "name": language_name(section.language),
            "tickets": section.tickets,
            "baseline": section.baseline,
            "models": [row_dict(row) for row in section.rows],
            "comparisons": [comparison_dict(c) for c in section.comparisons] if section.compared else None,
            "min_tickets": section.min_tickets,
        }
        for section in sections
    }


def analysis_dict(analysis: Analysis) -> dict:
    """The JSON keys the issue names: comparisons, ranking, agreement, trend."""
    agreement = analysis.agreement
    return {
        "baseline": analysis.baseline,
        "comparisons": [comparison_dict(c) for c in analysis.comparisons],
        "ranking": [{"model": r.model, "strength": r.strength, "ci": _pair(r.ci)} for r in analysis.ranking],
        "agreement": {
            "krippendorff_alpha_ordinal": agreement.krippendorff_alpha_ordinal,
            "units": agreement.units,
            "raters": agreement.raters,
            "reliable": agreement.reliable,
        },
        "trend": [
            {
                "week_start": w.week_start.date().isoformat(),
                "model": w.model,
                "n": w.n,
                "positive_pct": w.positive_pct,
                "ci_pct": _pair(w.ci_pct),
            }
            for w in analysis.trend
        ],
    }


def as_dict(report: Report) -> dict:
    extra = analysis_dict(report.extras.analysis) if report.extras.analysis else {}
    return {
        "since": report.since.isoformat() if report.since else None,
        "until": report.until.isoformat() if report.until else None,
        "models": [row_dict(row) for row in report.rows],
        **extra,
        "languages": languages_dict(report.extras.languages),
        "reasons": [
            {
                "model": r.model,
                "reason": r.reason,
                "label": r.label,
                "count": r.count,
                "share_pct": r.share_pct,
            }
            for r in report.extras.reasons
        ],
        "reply_sent": [
            {
                "model": o.model,
                "answered": o.n,
                "sent": o.sent,
                "sent_pct": o.sent_pct,
                "mean_chrf": o.mean_chrf,
                "median_edit_distance": o.median_edit_distance,
            }
            for o in report.extras.sent
        ],
    }


def render_json(report: Report) -> str:
    return json.dumps(as_dict(report), indent=2, ensure_ascii=False)


def reasons_table(reasons: Sequence[ReasonCount]) -> tuple[list[str], list[list[str]]]:
    """The reasons agents gave for their 1s and 2s, per model: the top ones."""
    return (
        ["Model", "Why it failed", "Votes", "% of reasons given"],
        [[r.model, r.label, str(r.count), f"{r.share_pct:.1f}"] for r in reasons],
    )


def sent_table(sent: Sequence[OutcomeStats]) -> tuple[list[str], list[list[str]]]:
    """Per model, against the reply the agent actually sent: how often its draft was the one sent."""
    return (
        ["Model", "Tickets answered", "Its draft sent", "Sent %", "chrF to reply", "Edit distance (median)"],
        [
            [
                o.model,
                str(o.n),
                str(o.sent),
                _fmt(o.sent_pct),
                _fmt(o.mean_chrf),
                _fmt(o.median_edit_distance, 3),
            ]
            for o in sent
            if o.n
        ],
    )


LANGUAGES_TITLE = "Per language (the customer's, decided per round)"


def shown_languages(report: Report) -> Sequence[LanguageSection]:
    """The language sections text, Markdown and CSV show: only when the ratings span two or more
    languages (with one, Tables 1 and 2 already are that language's)."""
    sections = report.extras.languages
    return sections if len(sections) > 1 else ()


def language_rows_table(sections: Sequence[LanguageSection]) -> tuple[list[str], list[list[str]]]:
    return (
        ["Language", "Model", "n", "Mean", "Positive %", "Positive 95% CI"],
        [
            [section.language, r.model, str(r.n), _fmt(r.mean, 2), _fmt(r.positive_pct), _ci(r)]
            for section in sections
            for r in section.rows
        ],
    )


def language_comparisons_table(sections: Sequence[LanguageSection]) -> tuple[list[str], list[list[str]]]:
    return (
        ["Language", "Model", "vs", "n", "Diff positive %", "95% CI", "p, positive share", "Verdict"],
        [
            [
                section.language,
                c.model,
                c.baseline,
                str(c.n_pairs),
                _fmt(c.diff_positive_pct),
                _range(c.diff_ci_pct),
                _p(c.mcnemar_p),
                c.verdict,
            ]
            for section in sections
            for c in section.comparisons
        ],
    )


def language_heading(section: LanguageSection) -> str:
    """ "German (de): 14 rated tickets", and why there is no comparison yet where there is none."""
    line = f"{language_name(section.language)} ({section.language}): {section.tickets} rated ticket(s)"
    if not section.compared:
        line += f"; compared with the baseline from {section.min_tickets} on"
    return line


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "model",
            *[f"score_{s}" for s in SCORES],
            "n",
            "mean",
            "negative_pct",
            "positive_pct",
            "positive_ci95_low",
            "positive_ci95_high",
        ]
    )
    for row in report.rows:
        low, high = row.positive_ci_pct or ("", "")
        writer.writerow(
            [
                row.model,
                *[row.counts.get(s, 0) for s in SCORES],
                row.n,
                _fmt(row.mean, 2) if row.mean is not None else "",
                "" if row.negative_pct is None else f"{row.negative_pct:.1f}",
                "" if row.positive_pct is None else f"{row.positive_pct:.1f}",
                low if low == "" else f"{low:.1f}",
                high if high == "" else f"{high:.1f}",
            ]
        )
    tables = analysis_tables(report.extras.analysis) if report.extras.analysis is not None else []
    if any(o.n for o in report.extras.sent):
        tables.append(sent_table(report.extras.sent))
    if report.extras.reasons:
        tables.append(reasons_table(report.extras.reasons))
    if shown_languages(report):
        tables.append(language_rows_table(shown_languages(report)))
        tables.append(language_comparisons_table(shown_languages(report)))
    for headers, body in tables:  # further tables follow, each after a blank line and its own header
        out.write("\n")
        writer.writerow(headers)
        writer.writerows(body)
    return out.getvalue()


def _table(headers: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in body)]


def table1_rows(rows: Sequence[ModelStats]) -> tuple[list[str], list[list[str]]]:
    headers = ["Model", *[str(s) for s in SCORES], "n", "Mean"]
    body = [[r.model, *[str(r.counts.get(s, 0)) for s in SCORES], str(r.n), _fmt(r.mean, 2)] for r in rows]
    return headers, body


def table2_rows(rows: Sequence[ModelStats]) -> tuple[list[str], list[list[str]]]:
    headers = ["Model", "Negative %", "Positive %", "Positive 95% CI"]
    body = [[r.model, _fmt(r.negative_pct), _fmt(r.positive_pct), _ci(r)] for r in rows]
    return headers, body


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _range(values: tuple[float, float] | None, digits: int = 1) -> str:
    return "–" if values is None else f"{values[0]:.{digits}f} to {values[1]:.{digits}f}"


SENT_TITLE = "The reply actually sent (tickets answered, per model)"
REASONS_TITLE = "Why drafts rated 1-2 failed (reasons agents gave)"
TITLES = ("Against the baseline", "Ranking (Bradley-Terry)", "Agreement between raters", "Weekly trend")


def analysis_tables(analysis: Analysis) -> list[tuple[list[str], list[list[str]]]]:
    """The analysis as four tables: comparisons, ranking, agreement, trend (weeks with ratings)."""
    comparisons = (
        [
            "Model",
            "vs",
            "n (paired: tickets, else ratings)",
            "Diff positive % (paired: tickets with raters' mean 3+)",
            "95% CI",
            "p, positive share",
            "p, scores",
            "Test",
            "Verdict",
        ],
        [
            [
                c.model,
                c.baseline,
                str(c.n_pairs),
                _fmt(c.diff_positive_pct),
                _range(c.diff_ci_pct),
                _p(c.mcnemar_p),
                _p(c.wilcoxon_p),
                c.test,
                c.verdict,
            ]
            for c in analysis.comparisons
        ],
    )
    ranked = (
        ["Rank", "Model", "Strength", "95% CI"],
        [[str(i), r.model, f"{r.strength:.2f}", _range(r.ci, 2)] for i, r in enumerate(analysis.ranking, 1)],
    )
    a = analysis.agreement
    if a.krippendorff_alpha_ordinal is None:
        verdict = "not measurable yet: needs drafts rated by two or more agents, with different scores"
    else:
        verdict = "reliable" if a.reliable else "not yet reliable (below 0.667): draw no conclusions"
    agreement = (
        ["Krippendorff alpha (ordinal)", "Drafts rated by 2+ agents", "Raters", "Verdict"],
        [[_fmt(a.krippendorff_alpha_ordinal, 3), str(a.units), str(a.raters), verdict]],
    )
    trend = (
        ["Week of", "Model", "n", "Positive %", "95% CI"],
        [
            [w.week_start.date().isoformat(), w.model, str(w.n), _fmt(w.positive_pct), _range(w.ci_pct)]
            for w in analysis.trend
            if w.n
        ],
    )
    return [comparisons, ranked, agreement, trend]


def render_text(report: Report) -> str:
    lines = [f"Draft ratings, {_period(report.since, report.until)}", ""]
    lines += ["Table 1: count of ratings (1 = worst, 5 = best)", *_table(*table1_rows(report.rows)), ""]
    lines += ["Table 2: negative (1-2) vs positive (3-5)", *_table(*table2_rows(report.rows))]
    if not any(r.n for r in report.rows):
        lines += ["", "No votes in this period."]
    elif report.extras.analysis is not None:
        for title, (headers, body) in zip(TITLES, analysis_tables(report.extras.analysis), strict=True):
            if body:
                lines += ["", title, *_table(headers, body)]
    if any(o.n for o in report.extras.sent):
        lines += ["", SENT_TITLE, *_table(*sent_table(report.extras.sent))]
    if report.extras.reasons:
        lines += ["", REASONS_TITLE, *_table(*reasons_table(report.extras.reasons))]
    for section in shown_languages(report):
        if section is report.extras.languages[0]:
            lines += ["", LANGUAGES_TITLE]
        lines += ["", language_heading(section), *_table(*language_rows_table([section]))]
        if section.comparisons:
            lines += _table(*language_comparisons_table([section]))
    return "\n".join(lines) + "\n"


def _md_table(headers: list[str], body: list[list[str]]) -> list[str]:
    aligns = ["---", *["---:"] * (len(headers) - 1)]
    return [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join(aligns) + " |",
        *("| " + " | ".join(r) + " |" for r in body),
    ]


def render_markdown(report: Report) -> str:
    lines = [f"## Draft ratings, {_period(report.since, report.until)}", ""]
    lines += ["### Table 1: count of ratings", "", *_md_table(*table1_rows(report.rows)), ""]
    lines += ["### Table 2: negative (1–2) vs positive (3–5)", "", *_md_table(*table2_rows(report.rows))]
    if report.extras.analysis is not None and any(r.n for r in report.rows):
        for title, (headers, body) in zip(TITLES, analysis_tables(report.extras.analysis), strict=True):
            if body:
                lines += ["", f"### {title}", "", *_md_table(headers, body)]
    if any(o.n for o in report.extras.sent):
        lines += ["", f"### {SENT_TITLE}", "", *_md_table(*sent_table(report.extras.sent))]
    if report.extras.reasons:
        lines += ["", f"### {REASONS_TITLE}", "", *_md_table(*reasons_table(report.extras.reasons))]
    for section in shown_languages(report):
        if section is report.extras.languages[0]:
            lines += ["", f"### {LANGUAGES_TITLE}"]
        lines += ["", f"#### {language_heading(section)}", "", *_md_table(*language_rows_table([section]))]
        if section.comparisons:
            lines += ["", *_md_table(*language_comparisons_table([section]))]
    return "\n".join(lines) + "\n"

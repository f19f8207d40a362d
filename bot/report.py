"""Renders per-model statistics as text, Markdown, JSON or CSV. Pure."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import date

from bot.stats import ModelStats
from core.domain import SCORES

FORMATS = ("text", "markdown", "json", "csv")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _period(since: date | None, until: date | None) -> str:
    return f"{since.isoformat() if since else 'beginning'} to {until.isoformat() if until else 'now'}"


def _ci(row: ModelStats) -> str:
    ci = row.positive_ci_pct
    return "–" if ci is None else f"{ci[0]:.1f}–{ci[1]:.1f}"


def render(rows: Sequence[ModelStats], fmt: str, since: date | None = None, until: date | None = None) -> str:
    if fmt == "json":
        return render_json(rows, since, until)
    if fmt == "csv":
        return render_csv(rows)
    if fmt == "markdown":
        return render_markdown(rows, since, until)
    if fmt == "text":
        return render_text(rows, since, until)
    raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


def as_dict(rows: Sequence[ModelStats], since: date | None, until: date | None) -> dict:
    return {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "models": [
            {
                "model": row.model,
                "counts": {str(s): row.counts.get(s, 0) for s in SCORES},
                "n": row.n,
                "mean": None if row.mean is None else round(row.mean, 2),
                "negative_pct": row.negative_pct,
                "positive_pct": row.positive_pct,
                "positive_ci95_pct": list(row.positive_ci_pct) if row.positive_ci_pct else None,
            }
            for row in rows
        ],
    }


def render_json(rows: Sequence[ModelStats], since: date | None, until: date | None) -> str:
    return json.dumps(as_dict(rows, since, until), indent=2, ensure_ascii=False)


def render_csv(rows: Sequence[ModelStats]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["model", *[f"score_{s}" for s in SCORES], "n", "mean", "negative_pct", "positive_pct"])
    for row in rows:
        writer.writerow(
            [
                row.model,
                *[row.counts.get(s, 0) for s in SCORES],
                row.n,
                _fmt(row.mean, 2) if row.mean is not None else "",
                "" if row.negative_pct is None else f"{row.negative_pct:.1f}",
                "" if row.positive_pct is None else f"{row.positive_pct:.1f}",
            ]
        )
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


def render_text(rows: Sequence[ModelStats], since: date | None, until: date | None) -> str:
    lines = [f"Draft ratings, {_period(since, until)}", ""]
    lines += ["Table 1: count of ratings (1 = worst, 5 = best)", *_table(*table1_rows(rows)), ""]
    lines += ["Table 2: negative (1-2) vs positive (3-5)", *_table(*table2_rows(rows))]
    if not any(r.n for r in rows):
        lines += ["", "No votes in this period."]
    return "\n".join(lines) + "\n"


def _md_table(headers: list[str], body: list[list[str]]) -> list[str]:
    aligns = ["---", *["---:"] * (len(headers) - 1)]
    return [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join(aligns) + " |",
        *("| " + " | ".join(r) + " |" for r in body),
    ]


def render_markdown(rows: Sequence[ModelStats], since: date | None, until: date | None) -> str:
    lines = [f"## Draft ratings, {_period(since, until)}", ""]
    lines += ["### Table 1: count of ratings", "", *_md_table(*table1_rows(rows)), ""]
    lines += ["### Table 2: negative (1–2) vs positive (3–5)", "", *_md_table(*table2_rows(rows))]
    return "\n".join(lines) + "\n"

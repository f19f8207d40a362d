"""The digest's chart: per model, how its drafts were rated, and its positive share week by week.

Left: the 1–5 distribution of each model's ratings as one stacked bar (red 1 to green 5, shares of
its ratings, n beside it). Right: the positive share (3–5) for each of the last weeks, with its 95%
Wilson interval as a band, one line per model. Rendered with matplotlib's Agg backend to PNG bytes:
no display, no files. The text digest carries the same numbers (screen readers, e-mail forwards).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from bot.reporting.comparisons import WeekShare
from bot.reporting.stats import ModelStats
from core.domain import SCORES

SCORE_COLOURS = {1: "#c0392b", 2: "#e67e22", 3: "#f1c40f", 4: "#7dbb4f", 5: "#27ae60"}


def digest_chart(rows: Sequence[ModelStats], trend: Sequence[WeekShare], title: str) -> bytes:
    """The chart as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 2.4 + 0.55 * max(len(rows), 1)), dpi=110, layout="constrained")
    figure.suptitle(title, fontsize=12)
    bars, lines = figure.subplots(1, 2, width_ratios=[1.1, 1])
    _distribution(bars, rows)
    _trend(lines, rows, trend)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _distribution(axes: Any, rows: Sequence[ModelStats]) -> None:
    names = [row.model for row in rows]
    positions = range(len(rows))
    left = [0.0] * len(rows)
    for score in SCORES:
        shares = [row.counts.get(score, 0) / row.n if row.n else 0.0 for row in rows]
        axes.barh(positions, shares, left=left, color=SCORE_COLOURS[score], label=str(score))
        left = [a + b for a, b in zip(left, shares, strict=True)]
    for y, row in zip(positions, rows, strict=True):
        axes.text(1.01, y, f"n={row.n}", va="center", fontsize=8)
    axes.set_yticks(list(positions), names, fontsize=9)
    axes.invert_yaxis()
    axes.set_xlim(0, 1.12)
    axes.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    axes.set_title("Ratings, 1 (worst) to 5 (best)", fontsize=10)
    axes.legend(
        ncols=5, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, -0.32), frameon=False, title="rating"
    )


def _trend(axes: Any, rows: Sequence[ModelStats], trend: Sequence[WeekShare]) -> None:
    weeks = sorted({w.week_start for w in trend})
    labels = [f"{week:%d %b}" for week in weeks]
    plotted = 0
    for row in rows:
        points = [(weeks.index(w.week_start), w) for w in trend if w.model == row.model and w.n]
        if not points:
            continue
        xs = [x for x, _ in points]
        axes.plot(xs, [w.positive_pct for _, w in points], marker="o", label=row.model)
        axes.fill_between(xs, [w.ci_pct[0] for _, w in points], [w.ci_pct[1] for _, w in points], alpha=0.15)
        plotted += 1
    axes.set_title("Positive (3-5) share per week, with 95% interval", fontsize=10)
    axes.set_ylim(0, 100)
    axes.set_ylabel("% positive", fontsize=9)
    if weeks:
        axes.set_xticks(range(len(weeks)), labels, fontsize=8, rotation=30)
    if plotted:
        axes.legend(fontsize=8, loc="lower left")
    else:
        axes.text(0.5, 0.5, "no dated ratings in these weeks", ha="center", transform=axes.transAxes)

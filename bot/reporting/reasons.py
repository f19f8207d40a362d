"""Why drafts failed: the reasons agents gave with their 1s and 2s, counted per model. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.domain import NEGATIVE_SCORES, VOTE_REASONS, Vote


@dataclass(frozen=True)
class ReasonCount:
    model: str
    reason: str  # a VOTE_REASONS code
    count: int
    share_pct: float  # of the model's negative votes that gave a reason

    @property
    def label(self) -> str:
        return VOTE_REASONS[self.reason]


def top_reasons(votes: Iterable[Vote], models: Sequence[str] = (), limit: int = 3) -> list[ReasonCount]:
    """Per model (in ``models`` order, then any other), its ``limit`` most given reasons, most
    frequent first; ties in VOTE_REASONS order. Votes without a reason are not counted."""
    by_model: dict[str, Counter[str]] = {}
    for vote in votes:
        if vote.reason is not None and vote.score in NEGATIVE_SCORES:
            by_model.setdefault(vote.model, Counter())[vote.reason] += 1
    order = list(VOTE_REASONS)
    found = []
    for model in [*models, *sorted(set(by_model) - set(models))]:
        counts = by_model.get(model)
        if not counts:
            continue
        total = sum(counts.values())
        ranked = sorted(counts.items(), key=lambda item: (-item[1], order.index(item[0])))
        found += [ReasonCount(model, r, n, round(100 * n / total, 1)) for r, n in ranked[:limit]]
    return found


def reasons_line(reasons: Sequence[ReasonCount], model: str) -> str | None:
    """``Wrong facts 5 (50%), Tone 3 (30%)`` for one model; None if it has no reasons."""
    mine = [r for r in reasons if r.model == model]
    if not mine:
        return None
    return ", ".join(f"{r.label} {r.count} ({r.share_pct:.0f}%)" for r in mine)

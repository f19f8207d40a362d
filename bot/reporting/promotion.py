"""Does a candidate adapter beat the current one? The evidence `models status`, `models promote` and
the digest show. Pure.

The candidate drafts for a share of tickets and the current adapter for the rest, so no ticket
has drafts of both: the two are compared unpaired, rating by rating (positive = 3-5, the study's
split): the difference in positive share with Newcombe's interval and the two-proportion z test
(``bot.reporting.comparisons.unpaired_comparison``). Each is also compared, paired by ticket, with the
baseline model that drafted the same tickets. A candidate *wins* when both have at least
``min_ratings`` ratings and its positive share is higher with p < ``max_p``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.reporting.comparisons import Comparison, compare, unpaired_comparison
from bot.reporting.model_versions import version_label
from bot.reporting.stats import ModelStats, model_stats
from core.domain import Vote

WINS = "wins"
LOSES = "worse"
UNDECIDED = "no clear difference yet"
TOO_FEW = "too few ratings yet"


@dataclass(frozen=True)
class CandidatePair:
    """A model with a candidate: the versions of its current and its candidate adapter."""

    model: str
    current: str | None  # None: the untuned base is current
    candidate: str


@dataclass(frozen=True)
class Standing:
    pair: CandidatePair
    current: ModelStats  # rows named "model @ version"
    candidate: ModelStats
    comparison: Comparison  # the candidate against the current version, unpaired
    against_baseline: tuple[Comparison, ...]  # current and candidate each against the baseline, paired
    min_ratings: int
    max_p: float

    @property
    def ratings_missing(self) -> int:
        return max(0, self.min_ratings - min(self.current.n, self.candidate.n))

    @property
    def verdict(self) -> str:
        diff, p = self.comparison.diff_positive_pct, self.comparison.mcnemar_p
        if diff is not None and p is not None and p < self.max_p and diff < 0:
            return LOSES
        if self.ratings_missing:
            return TOO_FEW
        if diff is not None and p is not None and p < self.max_p and diff > 0:
            return WINS
        return UNDECIDED

    @property
    def wins(self) -> bool:
        return self.verdict == WINS

    def evidence(self) -> dict[str, object]:
        """What a promotion writes into the adapter's manifest."""
        c = self.comparison
        return {
            "model": self.pair.model,
            "current": self.pair.current,
            "candidate": self.pair.candidate,
            "current_ratings": self.current.n,
            "candidate_ratings": self.candidate.n,
            "current_positive_pct": self.current.positive_pct,
            "candidate_positive_pct": self.candidate.positive_pct,
            "current_positive_ci_pct": self.current.positive_ci_pct,
            "candidate_positive_ci_pct": self.candidate.positive_ci_pct,
            "diff_positive_pct": c.diff_positive_pct,
            "diff_ci_pct": c.diff_ci_pct,
            "p_two_proportion_z": c.mcnemar_p,
            "p_mann_whitney": c.wilcoxon_p,
            "test": c.test,
            "min_ratings": self.min_ratings,
            "max_p": self.max_p,
            "verdict": self.verdict,
        }


def standing(
    votes: Sequence[Vote],
    pair: CandidatePair,
    min_ratings: int,
    max_p: float,
    baseline: str | None = None,
) -> Standing:
    """The candidate's standing from all ``votes`` (of any model: the baseline's are used too)."""
    current_name = version_label(pair.model, pair.current)
    candidate_name = version_label(pair.model, pair.candidate)
    mine = [v for v in votes if v.model == pair.model]
    current_votes = [v for v in mine if v.model_version == pair.current]
    candidate_votes = [v for v in mine if v.model_version == pair.candidate]
    rows = model_stats(
        [_named(v, current_name) for v in current_votes]
        + [_named(v, candidate_name) for v in candidate_votes],
        [current_name, candidate_name],
    )
    comparison = unpaired_comparison(
        [v.score for v in candidate_votes], [v.score for v in current_votes], candidate_name, current_name
    )
    against: tuple[Comparison, ...] = ()
    if baseline and baseline != pair.model:
        base_votes = [v for v in votes if v.model == baseline]
        both = base_votes + [_named(v, current_name) for v in current_votes]
        both += [_named(v, candidate_name) for v in candidate_votes]
        against = tuple(compare(both, [current_name, candidate_name], baseline)) if base_votes else ()
    return Standing(pair, rows[0], rows[1], comparison, against, min_ratings, max_p)


def _named(vote: Vote, name: str) -> Vote:
    return replace(vote, model=name)


def _share(row: ModelStats) -> str:
    if not row.n:
        return "no ratings"
    ci = row.positive_ci_pct
    interval = f" (95% CI {ci[0]:.1f}–{ci[1]:.1f}%)" if ci else ""
    return f"{row.positive_pct:.1f}% positive{interval}, n={row.n}"


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def standing_lines(result: Standing) -> list[str]:
    """The standing in a few plain lines (the CLI's and the digest's)."""
    pair, c = result.pair, result.comparison
    lines = [
        f"{pair.model}: current {pair.current or 'untuned base'}: {_share(result.current)}",
        f"{' ' * len(pair.model)}  candidate {pair.candidate}: {_share(result.candidate)}",
    ]
    if c.diff_positive_pct is not None and c.diff_ci_pct is not None:
        low, high = c.diff_ci_pct
        lines.append(
            f"  candidate - current: {c.diff_positive_pct:+.1f} points positive (95% CI {low:+.1f} to "
            f"{high:+.1f}), p={_p(c.mcnemar_p)} (two-proportion z, unpaired: each ticket had one of them)"
        )
    for other in result.against_baseline:
        if other.diff_positive_pct is None or other.diff_ci_pct is None:
            lines.append(f"  {other.model} vs {other.baseline}: no tickets rated for both yet")
            continue
        low, high = other.diff_ci_pct
        lines.append(
            f"  {other.model} vs {other.baseline}: {other.diff_positive_pct:+.1f} points "
            f"(95% CI {low:+.1f} to {high:+.1f}), McNemar p={_p(other.mcnemar_p)}, {other.n_pairs} tickets"
        )
    verdict = result.verdict
    if verdict == TOO_FEW:
        verdict += f" ({result.ratings_missing} more each for the minimum of {result.min_ratings})"
    elif verdict == WINS:
        verdict += f": `draftdesk models promote {pair.model}` makes it current"
    lines.append(f"  verdict: {verdict}")
    return lines


__all__ = ["CandidatePair", "Standing", "standing", "standing_lines"]

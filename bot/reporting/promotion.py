"""Does a candidate adapter beat the current one? The evidence `models status`, `models promote` and
the digest show. Pure.

The candidate drafts for a share of tickets and the current adapter for the rest, so no ticket has
drafts of both: the two are compared unpaired, with the *ticket* as the unit (its ratings by several
agents are not independent): each ticket gives the share of its ratings that are positive (3-5, the
study's split). The test is ``bot.reporting.sequential``'s always-valid mixture SPRT, which may be looked at
every week (or every minute) without raising the chance of promoting a candidate that is no better
above ``max_p``. Each version is also compared, paired by ticket, with the baseline model that
drafted the same tickets (``bot.reporting.comparisons``; shown, not part of the gate). A candidate *wins* when
both have at least ``min_tickets`` tickets and the always-valid interval of the difference lies
above 0 (then p ≤ ``max_p``); it is *worse* when the interval lies below 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from bot.reporting.comparisons import Comparison, compare
from bot.reporting.model_versions import version_label
from bot.reporting.sequential import BETTER, CANDIDATE, CURRENT, WORSE, SequentialTest, sequential_test
from core.domain import NEGATIVE_SCORES, Vote

WINS = "wins"
LOSES = "worse"
UNDECIDED = "no clear difference yet"
TOO_FEW = "too few tickets yet"
TEST_NAME = (
    "mSPRT, normal mixture (tau {tau:.0f} points), on each ticket's positive share: valid at every look"
)


@dataclass(frozen=True)
class CandidatePair:
    """A model with a candidate: the versions of its current and its candidate adapter."""

    model: str
    current: str | None  # None: the untuned base is current
    candidate: str


@dataclass(frozen=True)
class Standing:
    pair: CandidatePair
    current_ratings: int
    candidate_ratings: int
    test: SequentialTest  # the candidate against the current version, unpaired, by ticket
    against_baseline: tuple[Comparison, ...]  # current and candidate each against the baseline, paired

    @property
    def min_tickets(self) -> int:
        return self.test.min_units

    @property
    def max_p(self) -> float:
        return self.test.alpha

    @property
    def tickets_missing(self) -> int:
        return self.test.units_missing

    @property
    def verdict(self) -> str:
        if self.tickets_missing:
            return TOO_FEW
        if self.test.direction == BETTER:
            return WINS
        if self.test.direction == WORSE:
            return LOSES
        return UNDECIDED

    @property
    def wins(self) -> bool:
        return self.verdict == WINS

    def evidence(self) -> dict[str, object]:
        """What a promotion writes into the adapter's manifest (and `models status --format json` shows)."""
        t = self.test
        return {
            "model": self.pair.model,
            "current": self.pair.current,
            "candidate": self.pair.candidate,
            "unit": "ticket",
            "current_tickets": t.units_current,
            "candidate_tickets": t.units_candidate,
            "current_ratings": self.current_ratings,
            "candidate_ratings": self.candidate_ratings,
            "current_positive_pct": _pct(t.mean_current),
            "candidate_positive_pct": _pct(t.mean_candidate),
            "diff_positive_pct": _pct(t.diff),
            "diff_ci_pct": (_pct(t.ci[0]), _pct(t.ci[1])) if t.ci else None,
            "ci_level_pct": round(100 * (1 - t.alpha), 3),
            "p_sequential": t.p,
            "test": TEST_NAME.format(tau=100 * t.tau),
            "min_tickets": self.min_tickets,
            "max_p": self.max_p,
            "verdict": self.verdict,
        }


def _pct(share: float | None) -> float | None:
    return None if share is None else round(100 * share, 1)


def standing(
    votes: Sequence[Vote],
    pair: CandidatePair,
    min_tickets: int,
    max_p: float,
    baseline: str | None = None,
) -> Standing:
    """The candidate's standing from all ``votes`` (of any model: the baseline's are used too)."""
    current_name = version_label(pair.model, pair.current)
    candidate_name = version_label(pair.model, pair.candidate)
    mine = [v for v in votes if v.model == pair.model]
    current_votes = [v for v in mine if v.model_version == pair.current]
    candidate_votes = [v for v in mine if v.model_version == pair.candidate]
    test = sequential_test(rating_events(current_votes, candidate_votes), min_tickets, max_p)
    against: tuple[Comparison, ...] = ()
    if baseline and baseline != pair.model:
        base_votes = [v for v in votes if v.model == baseline]
        both = base_votes + [_named(v, current_name) for v in current_votes]
        both += [_named(v, candidate_name) for v in candidate_votes]
        against = tuple(compare(both, [current_name, candidate_name], baseline)) if base_votes else ()
    return Standing(pair, len(current_votes), len(candidate_votes), test, against)


def rating_events(current: Sequence[Vote], candidate: Sequence[Vote]) -> list[tuple[int, object, float]]:
    """The ratings in the order they were given, as the sequential test reads them: (arm, ticket,
    1.0 if positive else 0.0). A vote without a ticket id (an import) is its draft's own unit."""
    tagged = [(v, CURRENT) for v in current] + [(v, CANDIDATE) for v in candidate]
    tagged.sort(key=lambda item: item[0].voted_at)
    return [
        (arm, v.ticket_id if v.ticket_id > 0 else v.draft_id, 0.0 if v.score in NEGATIVE_SCORES else 1.0)
        for v, arm in tagged
    ]


def _named(vote: Vote, name: str) -> Vote:
    return replace(vote, model=name)


def _share(share: float | None, tickets: int, ratings: int) -> str:
    if not ratings:
        return "no ratings"
    return f"{100 * (share or 0.0):.1f}% positive, {tickets} tickets ({ratings} ratings)"


def _p(value: float | None) -> str:
    if value is None:
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def standing_lines(result: Standing) -> list[str]:
    """The standing in a few plain lines (the CLI's and the digest's)."""
    pair, t = result.pair, result.test
    lines = [
        f"{pair.model}: current {pair.current or 'untuned base'}: "
        + _share(t.mean_current, t.units_current, result.current_ratings),
        f"{' ' * len(pair.model)}  candidate {pair.candidate}: "
        + _share(t.mean_candidate, t.units_candidate, result.candidate_ratings),
    ]
    if t.diff is not None and t.ci is not None:
        low, high = t.ci
        level = f"{100 * (1 - t.alpha):g}% always-valid CI"
        lines.append(
            f"  candidate - current: {100 * t.diff:+.1f} points positive ({level} {100 * low:+.1f} to "
            f"{100 * high:+.1f}), sequential p={_p(t.p)} (by ticket; valid at every look)"
        )
    elif t.mean_current is not None and t.mean_candidate is not None:
        so_far = 100 * (t.mean_candidate - t.mean_current)
        lines.append(
            f"  candidate - current: {so_far:+.1f} points positive so far; the test starts at "
            f"{t.min_units} tickets each"
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
        verdict += f" ({result.tickets_missing} more each for the minimum of {result.min_tickets})"
    elif verdict == WINS:
        verdict += f": `draftdesk models promote {pair.model}` makes it current"
    lines.append(f"  verdict: {verdict}")
    return lines


__all__ = ["CandidatePair", "Standing", "rating_events", "standing", "standing_lines"]

"""Is a model better than the baseline, by how much, and how sure: the team lead's statistics. Pure.

Every ticket's drafts are rated side by side, so the data are paired by ticket: a model's score on a
ticket is the mean of its raters' scores (over all its drafts there), and it is positive when that
mean is 3 or more (the study's 3–5). Against the baseline, on the tickets where both were rated:

- the difference in positive share with Newcombe's hybrid score interval for paired proportions
  (method 10, Newcombe 1998), the exact McNemar test (statsmodels), and the Wilcoxon signed-rank
  test on the scores (scipy, ``zero_method="pratt"``);
- without ticket ids (counts only, as in the study's Table 1) the unpaired fallback: Newcombe's
  interval for two independent proportions and the two-proportion z test (statsmodels), and the
  Mann–Whitney U test (scipy); ``test`` says which was used.

Also a Bradley–Terry ranking of all models from their per-ticket comparisons (a tie counts half a
win each way) with bootstrap 95% intervals over tickets, Krippendorff's ordinal alpha over drafts
rated by two or more agents (the ``krippendorff`` package), and the weekly trend of the positive share.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import combinations

import numpy as np
from scipy import optimize, stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from bot.reporting.stats import wilson_interval
from core.domain import Vote

POSITIVE_FROM = 3.0  # a mean score of 3 or more is positive (the study: 3-5)
SIGNIFICANCE = 0.05
BETTER, WORSE, UNDECIDED = "better", "worse", "no clear difference yet"
RELIABLE_ALPHA = 0.667  # Krippendorff: below this, draw no conclusions from the ratings
PAIRED = "paired: McNemar exact; Wilcoxon signed-rank"
UNPAIRED = "unpaired (no ticket ids): 2-proportion z; Mann-Whitney U"


@dataclass(frozen=True)
class Comparison:
    model: str
    baseline: str
    n_pairs: int  # tickets rated for both (paired), or the smaller model's ratings (unpaired)
    diff_positive_pct: float | None
    diff_ci_pct: tuple[float, float] | None
    mcnemar_p: float | None  # unpaired: the two-proportion z test's p
    wilcoxon_p: float | None  # unpaired: the Mann-Whitney U test's p
    test: str

    @property
    def verdict(self) -> str:
        """``better``/``worse`` only when the interval excludes 0 *and* the test's p is below
        ``SIGNIFICANCE``: on a handful of tickets Newcombe's interval can exclude 0 while the exact
        McNemar test (2 tickets for the model, none against: p = 0.5) says nothing is shown yet."""
        if self.diff_ci_pct is None or self.mcnemar_p is None or self.mcnemar_p >= SIGNIFICANCE:
            return UNDECIDED
        low, high = self.diff_ci_pct
        return BETTER if low > 0 else WORSE if high < 0 else UNDECIDED

    @property
    def counted(self) -> str:
        """What ``n_pairs`` and the difference count: tickets (paired) or single ratings (unpaired)."""
        return "tickets" if self.test == PAIRED else "ratings"

    @property
    def share_label(self) -> str:
        """What the difference is a difference of."""
        return f"{self.counted} positive " + ("(raters' mean 3+)" if self.test == PAIRED else "(3+)")


@dataclass(frozen=True)
class Ranked:
    model: str
    strength: float  # Bradley-Terry: P(a beats b) = strength_a / (strength_a + strength_b); geometric mean 1
    ci: tuple[float, float] | None


@dataclass(frozen=True)
class Agreement:
    krippendorff_alpha_ordinal: float | None
    units: int  # drafts rated by two or more agents
    raters: int

    @property
    def reliable(self) -> bool:
        alpha = self.krippendorff_alpha_ordinal
        return alpha is not None and alpha >= RELIABLE_ALPHA


@dataclass(frozen=True)
class WeekShare:
    week_start: datetime
    model: str
    n: int
    positive_pct: float | None
    ci_pct: tuple[float, float] | None


def ticket_scores(votes: Iterable[Vote]) -> dict[str, dict[int, float]]:
    """model → ticket → the mean of the ticket's draft scores, each the mean of its raters."""
    by_draft: dict[tuple[str, int, str], list[int]] = defaultdict(list)
    for vote in votes:
        by_draft[(vote.model, vote.ticket_id, vote.draft_id)].append(vote.score)
    per_ticket: dict[tuple[str, int], list[float]] = defaultdict(list)
    for (model, ticket, _draft), scores in by_draft.items():
        per_ticket[(model, ticket)].append(sum(scores) / len(scores))
    result: dict[str, dict[int, float]] = defaultdict(dict)
    for (model, ticket), means in per_ticket.items():
        result[model][ticket] = sum(means) / len(means)
    return dict(result)


def has_ticket_ids(votes: Sequence[Vote]) -> bool:
    """Votes can be paired only when they say which ticket they rate (imports may not)."""
    return bool(votes) and all(vote.ticket_id > 0 for vote in votes)


def choose_baseline(models: Sequence[str], untuned: Sequence[str], configured: str | None) -> str | None:
    """``[digest] baseline``, else the first model without an adapter, else the first model."""
    if configured:
        return configured
    return next(iter(untuned), None) or next(iter(models), None)


def compare(votes: Sequence[Vote], models: Sequence[str], baseline: str) -> list[Comparison]:
    """Each model but the baseline against it, paired by ticket when the votes allow."""
    others = [m for m in models if m != baseline]
    if has_ticket_ids(votes):
        scores = ticket_scores(votes)
        base = scores.get(baseline, {})
        return [paired_comparison(scores.get(m, {}), base, m, baseline) for m in others]
    by_model: dict[str, list[int]] = defaultdict(list)
    for vote in votes:
        by_model[vote.model].append(vote.score)
    return [unpaired_comparison(by_model[m], by_model[baseline], m, baseline) for m in others]


def paired_comparison(
    model: dict[int, float], base: dict[int, float], name: str, baseline: str
) -> Comparison:
    tickets = sorted(set(model) & set(base))
    n = len(tickets)
    if n == 0:
        return Comparison(name, baseline, 0, None, None, None, None, PAIRED)
    x = np.array([model[t] for t in tickets])
    y = np.array([base[t] for t in tickets])
    xp, yp = x >= POSITIVE_FROM, y >= POSITIVE_FROM
    a, b = int(np.sum(xp & yp)), int(np.sum(xp & ~yp))
    c, d = int(np.sum(~xp & yp)), int(np.sum(~xp & ~yp))
    low, high = paired_difference_interval(a, b, c, d)
    mcnemar_p = float(mcnemar([[a, b], [c, d]], exact=True).pvalue)
    return Comparison(
        name,
        baseline,
        n,
        round(100 * (b - c) / n, 1),
        (round(100 * low, 1), round(100 * high, 1)),
        mcnemar_p,
        _wilcoxon_p(x, y),
        PAIRED,
    )


def _wilcoxon_p(x: np.ndarray, y: np.ndarray) -> float:
    if np.all(x == y):
        return 1.0  # no difference at all: nothing to test
    return float(stats.wilcoxon(x, y, zero_method="pratt").pvalue)


def paired_difference_interval(a: int, b: int, c: int, d: int) -> tuple[float, float]:
    """95% interval of p1 - p2 for paired proportions (Newcombe 1998, method 10).

    ``a``: both positive, ``b``: only the first, ``c``: only the second, ``d``: neither.
    """
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n)
    l2, u2 = wilson_interval(a + c, n)
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denominator) if denominator else 0.0
    below = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    above = (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2
    diff = p1 - p2
    return max(-1.0, diff - math.sqrt(max(below, 0.0))), min(1.0, diff + math.sqrt(max(above, 0.0)))


def unpaired_comparison(model: list[int], base: list[int], name: str, baseline: str) -> Comparison:
    if not model or not base:
        return Comparison(name, baseline, min(len(model), len(base)), None, None, None, None, UNPAIRED)
    k1 = sum(score >= POSITIVE_FROM for score in model)
    k2 = sum(score >= POSITIVE_FROM for score in base)
    n1, n2 = len(model), len(base)
    low, high = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff")
    one_sided_data = k1 + k2 in (0, n1 + n2)  # every rating on the same side: nothing to test
    z_p = 1.0 if one_sided_data else float(proportions_ztest([k1, k2], [n1, n2])[1])
    u_p = 1.0 if set(model) == set(base) == {model[0]} else float(stats.mannwhitneyu(model, base).pvalue)
    return Comparison(
        name,
        baseline,
        min(n1, n2),
        round(100 * (k1 / n1 - k2 / n2), 1),
        (round(100 * float(low), 1), round(100 * float(high), 1)),
        z_p,
        u_p,
        UNPAIRED,
    )


def ticket_outcomes(scores: dict[str, dict[int, float]]) -> list[list[tuple[str, str, float]]]:
    """Per ticket, every pair of models rated on it: (a, b, a's share of the win: 1, 0.5 or 0)."""
    tickets: dict[int, dict[str, float]] = defaultdict(dict)
    for model, per_ticket in scores.items():
        for ticket, score in per_ticket.items():
            tickets[ticket][model] = score
    outcomes = []
    for _ticket, rated in sorted(tickets.items()):
        pairs = []
        for a, b in combinations(sorted(rated), 2):
            share = 1.0 if rated[a] > rated[b] else 0.0 if rated[a] < rated[b] else 0.5
            pairs.append((a, b, share))
        if pairs:
            outcomes.append(pairs)
    return outcomes


def bradley_terry(outcomes: Sequence[Sequence[tuple[str, str, float]]], models: Sequence[str]) -> np.ndarray:
    """Log-strengths (sum zero) maximising the likelihood, lightly regularised so that a model that
    won or lost everything still gets a finite strength."""
    index = {m: i for i, m in enumerate(models)}
    rows = [(index[a], index[b], share) for pairs in outcomes for a, b, share in pairs]
    if not rows:
        return np.zeros(len(models))
    first = np.array([r[0] for r in rows])
    second = np.array([r[1] for r in rows])
    share = np.array([r[2] for r in rows])

    def loss(theta: np.ndarray) -> float:
        margin = theta[first] - theta[second]
        log_p_first = -np.logaddexp(0.0, -margin)
        log_p_second = -np.logaddexp(0.0, margin)
        return float(-np.sum(share * log_p_first + (1 - share) * log_p_second) + 0.01 * np.sum(theta**2))

    theta = optimize.minimize(loss, np.zeros(len(models)), method="L-BFGS-B").x
    return theta - theta.mean()


def ranking(
    votes: Sequence[Vote], models: Sequence[str], bootstrap: int = 200, seed: int = 0
) -> list[Ranked]:
    """Models by Bradley-Terry strength from their per-ticket comparisons, strongest first."""
    if not has_ticket_ids(votes):
        return []
    scores = ticket_scores(votes)
    names = [m for m in models if m in scores] + sorted(set(scores) - set(models))
    outcomes = ticket_outcomes({m: scores[m] for m in names})
    if len(names) < 2 or not outcomes:
        return []
    strengths = np.exp(bradley_terry(outcomes, names))
    rng = random.Random(seed)
    samples = np.array(
        [
            np.exp(bradley_terry([outcomes[rng.randrange(len(outcomes))] for _ in outcomes], names))
            for _ in range(bootstrap)
        ]
    )
    low, high = np.percentile(samples, [2.5, 97.5], axis=0) if bootstrap else (None, None)
    ranked = [
        Ranked(
            name,
            round(float(strengths[i]), 3),
            (round(float(low[i]), 3), round(float(high[i]), 3)) if bootstrap else None,
        )
        for i, name in enumerate(names)
    ]
    return sorted(ranked, key=lambda r: r.strength, reverse=True)


def agreement(votes: Iterable[Vote]) -> Agreement:
    """Krippendorff's alpha (ordinal) over the drafts that two or more agents rated."""

    by_draft: dict[str, dict[str, int]] = defaultdict(dict)
    for vote in votes:
        by_draft[vote.draft_id][vote.rater] = vote.score
    units = [draft for draft, ratings in by_draft.items() if len(ratings) >= 2]
    raters = sorted({rater for draft in units for rater in by_draft[draft]})
    if not units:
        return Agreement(None, 0, len(raters))
    matrix = np.full((len(raters), len(units)), np.nan)
    for column, draft in enumerate(units):
        for rater, score in by_draft[draft].items():
            matrix[raters.index(rater), column] = score
    return Agreement(ordinal_alpha(matrix), len(units), len(raters))


def ordinal_alpha(reliability_data: np.ndarray) -> float | None:
    """Krippendorff's alpha, ordinal, of a raters × units matrix (NaN: not rated); None if undefined."""
    import krippendorff

    values = reliability_data[~np.isnan(reliability_data)]
    if len(np.unique(values)) < 2:
        return None  # every rating the same: agreement is undefined, not perfect
    domain = sorted(set(float(v) for v in values) | {1.0, 2.0, 3.0, 4.0, 5.0})
    alpha = krippendorff.alpha(
        reliability_data=reliability_data, value_domain=domain, level_of_measurement="ordinal"
    )
    return round(float(alpha), 3)


def weekly_trend(
    votes: Iterable[Vote], models: Sequence[str], now: datetime, weeks: int = 8
) -> list[WeekShare]:
    """Positive share per model for each of the last ``weeks`` weeks (Monday 00:00 UTC to Monday)."""
    this_monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [this_monday - timedelta(weeks=k) for k in range(weeks - 1, -1, -1)]
    counts: dict[tuple[datetime, str], list[int]] = defaultdict(lambda: [0, 0])
    for vote in votes:
        for start in starts:
            if start <= vote.voted_at < start + timedelta(weeks=1):
                tally = counts[(start, vote.model)]
                tally[0] += vote.score >= POSITIVE_FROM
                tally[1] += 1
                break
    trend = []
    for start in starts:
        for model in models:
            positive, n = counts.get((start, model), (0, 0))
            if n:
                low, high = wilson_interval(positive, n)
                share, ci = round(100 * positive / n, 1), (round(100 * low, 1), round(100 * high, 1))
            else:
                share, ci = None, None
            trend.append(WeekShare(start, model, n, share, ci))
    return trend


@dataclass(frozen=True)
class Analysis:
    """Everything the report and the digest say beyond the study's two tables."""

    baseline: str | None
    comparisons: list[Comparison]
    ranking: list[Ranked]
    agreement: Agreement
    trend: list[WeekShare]


def analyse(votes: Sequence[Vote], models: Sequence[str], baseline: str | None, now: datetime) -> Analysis:
    names = list(dict.fromkeys([*models, *sorted({v.model for v in votes})]))
    comparisons = compare(votes, names, baseline) if baseline and votes else []
    return Analysis(
        baseline=baseline,
        comparisons=comparisons,
        ranking=ranking(votes, names),
        agreement=agreement(votes),
        trend=weekly_trend(votes, names, now),
    )

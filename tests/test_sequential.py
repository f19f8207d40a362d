"""The always-valid sequential test behind the promotion gate (bot/reporting/sequential.py): its formulas
against direct integration, the ticket as the unit, and a p-value that may be looked at after every rating."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, stats

from bot.reporting.sequential import (
    BETTER,
    CANDIDATE,
    CURRENT,
    TAU,
    UNDECIDED,
    WORSE,
    ArmPath,
    always_valid_paths,
    half_width,
    log_mixture_ratio,
    sequential_test,
    ticket_paths,
)


@pytest.mark.parametrize(
    ("diff", "variance", "theta0"), [(0.0, 0.01, 0.0), (0.12, 0.002, 0.0), (-0.3, 0.05, 0.1)]
)
def test_the_mixture_ratio_is_the_likelihood_ratio_integrated_over_the_normal_mixture(diff, variance, theta0):
    def mixed(theta: float) -> float:
        return stats.norm.pdf(diff, theta, math.sqrt(variance)) * stats.norm.pdf(theta, theta0, TAU)

    numerator, _ = integrate.quad(mixed, theta0 - 12 * TAU, theta0 + 12 * TAU, points=[diff])
    expected = numerator / stats.norm.pdf(diff, theta0, math.sqrt(variance))
    assert math.exp(
        float(log_mixture_ratio(np.array(diff), np.array(variance), TAU, theta0))
    ) == pytest.approx(expected, rel=1e-7)


def test_a_known_value_and_the_interval_ends_where_the_ratio_reaches_one_over_alpha():
    # D = 0.2, V = 0.01, tau^2 = 0.01: sqrt(1/2) * exp(0.01 * 0.04 / (2 * 0.01 * 0.02)) = e / sqrt(2)
    assert math.exp(float(log_mixture_ratio(np.array(0.2), np.array(0.01)))) == pytest.approx(
        math.e / math.sqrt(2)
    )
    variance, alpha, diff = np.array(0.004), 0.05, 0.07
    h = float(half_width(variance, alpha))
    for end in (diff - h, diff + h):
        ratio = math.exp(float(log_mixture_ratio(np.array(diff), variance, TAU, theta0=end)))
        assert ratio == pytest.approx(1 / alpha)


def test_a_ticket_is_one_unit_whose_value_is_the_mean_of_its_ratings():
    events = [
        (CURRENT, 1, 1.0),
        (CANDIDATE, 2, 0.0),
        (CURRENT, 1, 0.0),
        (CURRENT, 3, 1.0),
        (CANDIDATE, 2, 1.0),
    ]
    current, candidate = ticket_paths(events)
    assert current.n.tolist() == [1, 1, 1, 2, 2] and candidate.n.tolist() == [0, 1, 1, 1, 1]
    assert current.total.tolist() == [1.0, 1.0, 0.5, 1.5, 1.5]  # ticket 1: 1, then (1 + 0) / 2
    assert current.total_sq.tolist() == [1.0, 1.0, 0.25, 1.25, 1.25]
    assert candidate.total.tolist() == [0.0, 0.0, 0.0, 0.0, 0.5]


def test_the_replay_matches_recomputing_everything_from_scratch_after_each_rating():
    rng = np.random.default_rng(3)
    events = [(int(rng.integers(2)), int(rng.integers(40)), float(rng.integers(2))) for _ in range(300)]
    current, candidate = ticket_paths(events)
    for i in (10, 99, 299):
        for arm, path in ((CURRENT, current), (CANDIDATE, candidate)):
            values: dict[int, list[float]] = {}
            for a, unit, value in events[: i + 1]:
                if a == arm:
                    values.setdefault(unit, []).append(value)
            means = np.array([np.mean(v) for v in values.values()])
            assert (path.n[i], path.total[i], path.total_sq[i]) == pytest.approx(
                (len(means), means.sum(), (means**2).sum())
            )


def events_for(shares: tuple[float, float], tickets: int, seed: int) -> list[tuple[int, int, float]]:
    """Alternating current and candidate tickets, two ratings each, positive at the arm's share."""
    rng = np.random.default_rng(seed)
    events = []
    for ticket in range(tickets):
        arm = ticket % 2
        events += [(arm, ticket, float(rng.random() < shares[arm])) for _ in range(2)]
    return events


def test_the_p_value_never_rises_as_ratings_arrive_and_falls_with_a_clear_effect():
    events = events_for((0.5, 0.75), 400, seed=1)
    p_after = [
        sequential_test(events[:k], min_units=20, alpha=0.05).p for k in range(80, len(events) + 1, 40)
    ]
    assert all(later <= earlier for earlier, later in itertools.pairwise(p_after))
    assert p_after[0] > 0.05 > 0.001 > p_after[-1]
    clear = sequential_test(events, min_units=20, alpha=0.05)
    assert clear.direction == BETTER and clear.ci is not None and 0 < clear.ci[0] < clear.diff < clear.ci[1]
    worse = sequential_test([(1 - arm, unit, value) for arm, unit, value in events], min_units=20, alpha=0.05)
    assert worse.direction == WORSE and worse.ci is not None and worse.ci[1] < 0


def test_no_effect_stays_undecided_and_too_few_tickets_give_no_p_value():
    same = sequential_test(events_for((0.6, 0.6), 400, seed=2), min_units=20, alpha=0.05)
    assert same.direction == UNDECIDED and same.p is not None and same.p > 0.05
    assert same.ci is not None and same.ci[0] < 0 < same.ci[1]
    early = sequential_test(events_for((0.0, 1.0), 30, seed=2), min_units=20, alpha=0.05)
    assert (early.units_current, early.units_candidate, early.units_missing) == (15, 15, 5)
    assert early.p is None and early.ci is None and early.diff is None and early.direction == UNDECIDED
    assert sequential_test([], min_units=20, alpha=0.05).units_missing == 20


def test_looking_after_every_observation_keeps_false_alarms_below_alpha_where_a_z_test_does_not():
    """Null data (normal, variance estimated), 400 units an arm, a look after each: the always-valid p
    reaches 0.05 in at most 5% of runs; the fixed-sample z test at the same looks, in far more."""
    rng = np.random.default_rng(11)
    runs, units = 1000, 800
    candidate = np.tile(np.arange(units) % 2 == 1, (runs, 1))
    value = rng.normal(0.6, 0.4, (runs, units))
    arms = []
    for member in (~candidate, candidate):
        arms.append(
            ArmPath(
                *(np.cumsum(x, axis=1) for x in (member.astype(float), value * member, value**2 * member))
            )
        )
    paths = always_valid_paths(arms[0], arms[1], min_units=20, alpha=0.05)
    sequential_rate = float(np.mean(paths.p[:, -1] <= 0.05))
    diff, n = paths.diff, arms[0].n
    z = np.abs(diff) / np.sqrt(2 * 0.16 / n)  # the known variance: the z test's best case
    peeking_rate = float(np.mean(np.any((z > 1.96) & np.isfinite(diff), axis=1)))
    assert sequential_rate <= 0.05 and peeking_rate > 0.2

"""An always-valid test of a candidate adapter against the current one, the ticket as the unit. Pure.

``draftdesk models status`` and the weekly digest look at the same growing data again and again. A
fixed-sample test checked at every look promotes a candidate that is no better far more often than
its p threshold says; this test stays valid however often, and whenever, anyone looks. It is a
mixture sequential probability ratio test (mSPRT) with a normal mixture, as in Johari, Koomen,
Pekelis and Walsh, "Always valid inference: continuous monitoring of A/B tests" (Operations Research
70(3), 2022), on the difference of two independent means.

**Unit.** Ratings of one draft by several agents are not independent, so each ticket gives one
value: the mean of its ratings' values (the bot passes 1 for a positive rating, 0 otherwise: the
ticket's positive share). The candidate drafts each ticket with probability ``candidate_share``,
drawn independently per ticket, so the current version's tickets (arm ``a``) and the candidate's
(arm ``b``) are two independent samples.

**Statistic.** With ``n`` tickets, mean ``ȳ`` and sample variance ``s²`` per arm, the estimate of
the effect θ (candidate minus current) is ``D = ȳ_b - ȳ_a``, with variance
``V = s²_a / n_a + s²_b / n_b``. For normal data the successive estimates have independent
increments in the information ``1/V`` (their covariance is the later variance, for any split of
tickets between the arms), so ``Z = D / V`` is a Brownian motion with drift θ observed at times
``1/V``. Mixing its likelihood ratio over θ ~ N(θ0, τ²) gives

    Λ(θ0) = sqrt(V / (V + τ²)) · exp(τ² (D - θ0)² / (2 V (V + τ²)))

a non-negative martingale with mean 1 when θ = θ0. By Ville's inequality it ever reaches 1/α with
probability at most α, so:

- the always-valid p-value is the running minimum of ``min(1, 1/Λ(0))``: it never rises as data
  arrive, and "p ≤ α at any look" happens with probability at most α when θ = 0;
- the always-valid (1 - α) confidence sequence: at each moment ``{θ : Λ(θ) < 1/α} = D ± h`` with
  ``h² = 2 V (V + τ²) / τ² · (ln(1/α) + ½ ln((V + τ²) / V))``; the running intersection of these
  intervals holds θ at every moment with probability at least 1 - α. 0 is outside it exactly when
  p ≤ α, so the interval says which way the difference goes.

**Mixing variance τ².** τ = 0.10 (10 points of positive share), so τ² = 0.01. At the information
``I`` where an effect θ gets detected, ln Λ is largest in τ² at τ² = θ² - 1/I ≈ θ², so the mixture
is most efficient for effects of about τ, and 10 points is the improvement the gate is tuned to find
quickly. Smaller effects are still found, later; the simulation (docs/performance.md) shows the
weeks, and that τ from 0.10 to 0.20 finds +10 points about equally fast while 0.05 is slower.

**Plug-in variance.** σ² is estimated by each arm's sample variance (as Johari et al. do; valid as
tickets accumulate), so the test starts only once each arm has ``min_units`` tickets, and each
variance is at least ``VARIANCE_FLOOR`` (a degenerate sample of all-positive tickets is not taken
for certainty). The simulation in ``benchmarks/bench_promotion_gate.py`` checks the error rate
with realistic, correlated ratings.

**Time.** The p-value and interval replay the data in the order the ratings came: at each rating
the state is what an observer would have seen then (a ticket's value the mean of its ratings so
far). So the minimum over the path is the minimum an observer watching continuously would have
seen; a weekly look sees the same.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

import numpy as np

TAU = 0.10  # the mixture's standard deviation: the effect (a share's difference) found fastest
VARIANCE_FLOOR = 0.01  # per arm: a sample with no spread yet is not certainty
CURRENT, CANDIDATE = 0, 1
BETTER, WORSE, UNDECIDED = 1, -1, 0


@dataclass(frozen=True)
class ArmPath:
    """One arm's running state after each event: its units, the sum and the sum of squares of their values."""

    n: np.ndarray
    total: np.ndarray
    total_sq: np.ndarray


def ticket_paths(events: Iterable[tuple[int, Hashable, float]]) -> tuple[ArmPath, ArmPath]:
    """The running state of both arms after each event, in the order given.

    An event is one rating: ``(arm, unit, value)``, arm ``CURRENT`` or ``CANDIDATE``. A unit's value
    is the mean of its events' values so far; a unit's first event adds it to its arm.
    """
    counts, sums, squares = [0, 0], [0.0, 0.0], [0.0, 0.0]
    units: dict[tuple[int, Hashable], list[float]] = {}
    rows: list[tuple[float, ...]] = []
    for arm, unit, value in events:
        state = units.get((arm, unit))
        if state is None:
            state = units[(arm, unit)] = [0.0, 0.0]
            counts[arm] += 1
        else:
            old = state[0] / state[1]
            sums[arm] -= old
            squares[arm] -= old * old
        state[0] += value
        state[1] += 1
        new = state[0] / state[1]
        sums[arm] += new
        squares[arm] += new * new
        rows.append((counts[0], sums[0], squares[0], counts[1], sums[1], squares[1]))
    table = np.array(rows, dtype=float).reshape(-1, 6)
    return ArmPath(*table[:, 0:3].T), ArmPath(*table[:, 3:6].T)


def difference_and_variance(a: ArmPath, b: ArmPath) -> tuple[np.ndarray, np.ndarray]:
    """``D = mean_b - mean_a`` and its variance ``s²_a/n_a + s²_b/n_b`` (each s² at least the floor);
    NaN where an arm has fewer than 2 units. Works on arrays of any shape."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_a, mean_b = a.total / a.n, b.total / b.n
        var_a = np.maximum((a.total_sq - a.total * mean_a) / (a.n - 1), VARIANCE_FLOOR)
        var_b = np.maximum((b.total_sq - b.total * mean_b) / (b.n - 1), VARIANCE_FLOOR)
        variance = var_a / a.n + var_b / b.n
    too_few = (a.n < 2) | (b.n < 2)
    return np.where(too_few, np.nan, mean_b - mean_a), np.where(too_few, np.nan, variance)


def log_mixture_ratio(
    diff: np.ndarray, variance: np.ndarray, tau: float = TAU, theta0: float = 0.0
) -> np.ndarray:
    """ln Λ(θ0): the normal-mixture likelihood ratio of "θ ~ N(θ0, τ²)" against "θ = θ0"."""
    tau2 = tau * tau
    return 0.5 * np.log(variance / (variance + tau2)) + tau2 * (diff - theta0) ** 2 / (
        2 * variance * (variance + tau2)
    )


def half_width(variance: np.ndarray, alpha: float, tau: float = TAU) -> np.ndarray:
    """Half the width of the (1 - α) interval ``{θ : Λ(θ) < 1/α}`` at one moment."""
    tau2 = tau * tau
    return np.sqrt(
        2
        * variance
        * (variance + tau2)
        / tau2
        * (np.log(1 / alpha) + 0.5 * np.log((variance + tau2) / variance))
    )


@dataclass(frozen=True)
class Paths:
    """The always-valid p-value and interval after each event (along the last axis)."""

    diff: np.ndarray  # the estimate at each moment (NaN before the test starts)
    p: np.ndarray  # running minimum of 1/Λ(0), at most 1
    low: np.ndarray  # running maximum of the lower ends (-inf before the test starts)
    high: np.ndarray  # running minimum of the upper ends
    last_low: np.ndarray  # this moment's own interval, for when the running one is empty
    last_high: np.ndarray


def always_valid_paths(a: ArmPath, b: ArmPath, min_units: int, alpha: float, tau: float = TAU) -> Paths:
    """The p-value and confidence sequence along the events; the test starts once both arms have
    ``min_units`` units (and at least 2). Works on arrays with events on the last axis."""
    diff, variance = difference_and_variance(a, b)
    started = (a.n >= max(min_units, 2)) & (b.n >= max(min_units, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.where(started, log_mixture_ratio(diff, variance, tau), -np.inf)
        width = np.where(started, half_width(variance, alpha, tau), np.inf)
    p = np.minimum.accumulate(np.minimum(1.0, np.exp(-log_ratio)), axis=-1)
    last_low = np.where(started, diff - width, -np.inf)
    last_high = np.where(started, diff + width, np.inf)
    low = np.maximum.accumulate(last_low, axis=-1)
    high = np.minimum.accumulate(last_high, axis=-1)
    return Paths(np.where(started, diff, np.nan), p, low, high, last_low, last_high)


def interval(paths: Paths) -> tuple[np.ndarray, np.ndarray]:
    """The running intersection, or this moment's interval where the intersection is empty (which
    happens with probability at most α, and only when p ≤ α)."""
    empty = paths.low > paths.high
    return np.where(empty, paths.last_low, paths.low), np.where(empty, paths.last_high, paths.high)


def direction(paths: Paths, alpha: float) -> np.ndarray:
    """``BETTER`` where the interval lies above 0 (then p ≤ α), ``WORSE`` below, else ``UNDECIDED``."""
    low, high = interval(paths)
    decided = paths.p <= alpha
    return np.where(decided & (low > 0), BETTER, np.where(decided & (high < 0), WORSE, UNDECIDED))


@dataclass(frozen=True)
class SequentialTest:
    """The test's state now: counts, means, the estimate with its interval, the p-value."""

    units_current: int
    units_candidate: int
    mean_current: float | None
    mean_candidate: float | None
    diff: float | None  # candidate - current; None before the test starts
    ci: tuple[float, float] | None  # always-valid (1 - alpha) interval of the difference
    p: float | None  # always-valid p-value; None before the test starts
    alpha: float
    tau: float
    min_units: int
    direction: int  # BETTER, WORSE or UNDECIDED

    @property
    def units_missing(self) -> int:
        return max(0, self.min_units - min(self.units_current, self.units_candidate))


def sequential_test(
    events: Iterable[tuple[int, Hashable, float]], min_units: int, alpha: float, tau: float = TAU
) -> SequentialTest:
    """The test over rating events in the order they came (see ``ticket_paths``)."""
    a, b = ticket_paths(events)
    if not len(a.n):
        return SequentialTest(0, 0, None, None, None, None, None, alpha, tau, min_units, UNDECIDED)
    paths = always_valid_paths(a, b, min_units, alpha, tau)
    low, high = interval(paths)
    n_a, n_b = int(a.n[-1]), int(b.n[-1])
    started = bool(np.isfinite(paths.diff[-1]))
    return SequentialTest(
        units_current=n_a,
        units_candidate=n_b,
        mean_current=float(a.total[-1] / n_a) if n_a else None,
        mean_candidate=float(b.total[-1] / n_b) if n_b else None,
        diff=float(paths.diff[-1]) if started else None,
        ci=(float(low[-1]), float(high[-1])) if started else None,
        p=float(paths.p[-1]) if started else None,
        alpha=alpha,
        tau=tau,
        min_units=min_units,
        direction=int(direction(paths, alpha)[-1]),
    )


__all__ = [
    "BETTER",
    "CANDIDATE",
    "CURRENT",
    "TAU",
    "UNDECIDED",
    "WORSE",
    "ArmPath",
    "Paths",
    "SequentialTest",
    "always_valid_paths",
    "difference_and_variance",
    "direction",
    "half_width",
    "interval",
    "log_mixture_ratio",
    "sequential_test",
    "ticket_paths",
]

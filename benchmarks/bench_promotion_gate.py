"""How often the promotion gate promotes a candidate that is no better, and how fast it finds a better one.

    python -m benchmarks.bench_promotion_gate                 # 2,000 runs per scenario, 26 weekly looks
    python -m benchmarks.bench_promotion_gate --runs 200 --weeks 8

Each run simulates one candidate adapter trial: ``--tickets-per-week`` tickets a week for the model,
each drafted by the candidate with probability ``--candidate-share`` (as the bot draws it), the rest
by the current version. Each draft is rated by 1, 2 or 3 agents (probabilities ``--ratings``) drawn
without repetition from a team of ``--agents``. A rating is positive (3-5) with probability
``expit(b_version + u_ticket + l_agent)``: ``u_ticket ~ N(0, --ticket-sd²)`` is shared by the
ratings of one draft (so they are correlated), ``l_agent ~ N(0, --agent-sd²)`` is each agent's own
leniency, drawn once per run. ``b`` is set so that the current version's expected positive share is
``--positive`` and the candidate's the same (the null scenario) or ``--effect`` higher.

Every week someone looks: ``models status``, ``models promote``, the digest. The run counts as
promoted at the first look where the gate says *wins*:

- the new gate (``bot.reporting.sequential``): the always-valid mSPRT on ticket-level positive shares,
  replayed rating by rating as the bot does, starting at ``--min-tickets`` tickets per version;
- the old gate: the two-proportion z test over single ratings, p < ``--alpha``, candidate higher,
  at least ``--min-ratings`` ratings per version (as ``bot/reporting/promotion.py`` had it).

Prints ONE JSON object: both gates' false-promotion rate (with a 95% Wilson interval) under the null,
and, for the better candidate, the share promoted by weeks 4, 8, 13 and 26 and the median weeks.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from bot.reporting.sequential import BETTER, TAU, WORSE, ArmPath, Paths, always_valid_paths, direction
from bot.reporting.stats import wilson_interval
from models.machine import cpu_description

SLOTS = 3  # the most ratings a draft gets here
CHECK_WEEKS = (4, 8, 13, 26)


def logit_for_share(share: float, spread: float) -> float:
    """``b`` with E[expit(b + X)] = share for X ~ N(0, spread²) (Gauss-Hermite quadrature)."""
    nodes, weights = np.polynomial.hermite.hermgauss(60)

    def gap(b: float) -> float:
        return (
            float(np.sum(weights * special.expit(b + np.sqrt(2) * spread * nodes)) / np.sqrt(np.pi)) - share
        )

    return float(optimize.brentq(gap, -20, 20))


@dataclass(frozen=True)
class Trials:
    """Simulated ratings of ``runs`` trials: per ticket, who drafted it and its ratings (by slot)."""

    candidate: np.ndarray  # (runs, tickets): drafted by the candidate
    ratings: np.ndarray  # (runs, tickets): how many agents rated the draft (1..SLOTS)
    positive: np.ndarray  # (runs, tickets, SLOTS): each rating positive; False past ``ratings``


def simulate(rng: np.random.Generator, runs: int, args: argparse.Namespace, effect: float) -> Trials:
    tickets = args.weeks * args.tickets_per_week
    spread = float(np.hypot(args.ticket_sd, args.agent_sd))
    b = np.array([logit_for_share(args.positive, spread), logit_for_share(args.positive + effect, spread)])
    candidate = rng.random((runs, tickets)) < args.candidate_share
    ticket_effect = rng.normal(0.0, args.ticket_sd, (runs, tickets))
    leniency = rng.normal(0.0, args.agent_sd, (runs, args.agents))
    ratings = rng.choice(np.arange(1, SLOTS + 1), size=(runs, tickets), p=args.ratings)
    agents = np.argsort(rng.random((runs, tickets, args.agents)), axis=2)[..., :SLOTS]  # distinct per draft
    logit = (
        b[candidate.astype(int)][..., None]
        + ticket_effect[..., None]
        + leniency[np.arange(runs)[:, None, None], agents]
    )
    given = np.arange(SLOTS) < ratings[..., None]
    positive = (rng.random((runs, tickets, SLOTS)) < special.expit(logit)) & given
    return Trials(candidate, ratings, positive)


def new_gate_paths(trials: Trials, min_tickets: int, alpha: float, tau: float) -> Paths:
    """``bot.reporting.sequential``'s replay, vectorised over runs: events are ratings, a draft's in a row, so
    the path has ``SLOTS`` events per ticket; a padded slot (no rating) repeats the state after the
    draft's last rating, which moves no running minimum."""
    runs = trials.candidate.shape[0]
    slot = np.arange(SLOTS)
    partial = np.cumsum(trials.positive, axis=2) / np.minimum(slot + 1, trials.ratings[..., None])
    final = partial[..., -1]  # a ticket's value: the share of its ratings that are positive
    arms = []
    for member in (~trials.candidate, trials.candidate):
        value, square = final * member, final**2 * member
        before = [np.cumsum(x, axis=1) - x for x in (member.astype(float), value, square)]  # earlier tickets
        n = before[0][..., None] + member[..., None]
        total = before[1][..., None] + member[..., None] * partial
        total_sq = before[2][..., None] + member[..., None] * partial**2
        arms.append(
            ArmPath(*(np.broadcast_to(x, partial.shape).reshape(runs, -1) for x in (n, total, total_sq)))
        )
    return always_valid_paths(arms[0], arms[1], min_tickets, alpha, tau)


def simulate_chunk(
    rng: np.random.Generator, runs: int, args: argparse.Namespace, effect: float
) -> dict[str, Any]:
    """Per run, the first week each gate says *wins* (0: never), and the new gate *worse*."""
    trials = simulate(rng, runs, args, effect)
    verdict = direction(new_gate_paths(trials, args.min_tickets, args.alpha, args.tau), args.alpha)
    looks = np.arange(1, args.weeks + 1) * args.tickets_per_week * SLOTS - 1  # the last event of each week
    weekly = verdict[:, looks]

    ends = np.arange(1, args.weeks + 1) * args.tickets_per_week  # the old gate, on single ratings
    counts = {}
    for name, member in (("current", ~trials.candidate), ("candidate", trials.candidate)):
        k = np.cumsum(trials.positive.sum(axis=2) * member, axis=1)[:, ends - 1]
        n = np.cumsum(trials.ratings * member, axis=1)[:, ends - 1]
        counts[name] = (k, n)
    old_wins = old_gate_wins(*counts["candidate"], *counts["current"], args.alpha, args.min_ratings)
    return {
        "new": first_week(weekly == BETTER),
        "new_worse": first_week(weekly == WORSE),
        "old": first_week(old_wins),
        "ratings_per_ticket": float(trials.ratings.mean()),
    }


def old_gate_wins(
    k1: np.ndarray, n1: np.ndarray, k2: np.ndarray, n2: np.ndarray, alpha: float, minimum: int
) -> np.ndarray:
    """The old verdict *wins*: the pooled two-proportion z test (statsmodels' ``proportions_ztest``,
    two-sided) below alpha, the candidate's share higher, both with ``minimum`` ratings."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (k1 + k2) / (n1 + n2)
        z = (k1 / n1 - k2 / n2) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        p = np.where(np.isfinite(z), 2 * stats.norm.sf(np.abs(z)), 1.0)
    return (n1 >= minimum) & (n2 >= minimum) & (p < alpha) & (k1 / n1 > k2 / n2)


def first_week(says: np.ndarray) -> np.ndarray:
    """Per run, the first week (1-based) the verdict holds at a look; 0 when it never does."""
    return np.where(says.any(axis=1), says.argmax(axis=1) + 1, 0)


def rate(hits: int, runs: int) -> dict[str, object]:
    low, high = wilson_interval(hits, runs)
    return {
        "promoted": hits,
        "runs": runs,
        "rate": round(hits / runs, 4),
        "ci95": [round(low, 4), round(high, 4)],
    }


def power(weeks: np.ndarray, horizon: int) -> dict[str, object]:
    promoted = np.where(weeks > 0, weeks, np.inf)
    median = float(np.median(promoted))
    return {
        "promoted_by_week": {
            str(w): round(float(np.mean(promoted <= w)), 4) for w in CHECK_WEEKS if w <= horizon
        },
        "median_weeks_to_promotion": median if np.isfinite(median) else None,
    }


def scenario(args: argparse.Namespace, effect: float, seed: int) -> dict[str, np.ndarray | float]:
    rng = np.random.default_rng(seed)
    parts = [
        simulate_chunk(rng, min(args.chunk, args.runs - start), args, effect)
        for start in range(0, args.runs, args.chunk)
    ]
    joined: dict[str, Any] = {
        key: np.concatenate([p[key] for p in parts]) for key in ("new", "new_worse", "old")
    }
    joined["ratings_per_ticket"] = float(np.mean([p["ratings_per_ticket"] for p in parts]))
    return joined


def setup_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the flags, in one line; None when they make a simulation."""
    if min(args.runs, args.weeks, args.tickets_per_week, args.chunk) < 1:
        return "--runs, --weeks, --tickets-per-week and --chunk must be at least 1"
    if not 0 < args.candidate_share < 1 or not 0 < args.alpha < 1:
        return "--candidate-share and --alpha must be between 0 and 1"
    if min(args.ratings) < 0 or abs(sum(args.ratings) - 1) > 1e-9:
        return f"--ratings: {SLOTS} probabilities of 1..{SLOTS} ratings that add up to 1"
    if args.agents < SLOTS:
        return f"--agents must be at least {SLOTS} (a draft's raters are distinct)"
    if not (0 < args.positive < 1 and 0 < args.effect < 1 - args.positive):
        return "--positive must be a share in (0, 1) and --effect above 0 with --positive + --effect below 1"
    if args.min_tickets < 2:
        return "--min-tickets must be at least 2"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="simulated trials per scenario")
    parser.add_argument("--weeks", type=int, default=26, help="weekly looks per trial")
    parser.add_argument("--tickets-per-week", type=int, default=80, help="tickets the model drafts a week")
    parser.add_argument("--candidate-share", type=float, default=0.5)
    parser.add_argument(
        "--ratings", type=float, nargs=SLOTS, default=[0.5, 0.3, 0.2], help="P(1, 2, 3 ratings)"
    )
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--ticket-sd", type=float, default=1.0, help="a draft's shared effect, logit scale")
    parser.add_argument("--agent-sd", type=float, default=0.5, help="agents' leniency, logit scale")
    parser.add_argument("--positive", type=float, default=0.60, help="the current version's positive share")
    parser.add_argument("--effect", type=float, default=0.10, help="the better candidate's extra share")
    parser.add_argument("--alpha", type=float, default=0.05, help="[promotion] max_p")
    parser.add_argument("--min-tickets", type=int, default=30, help="[promotion] min_tickets")
    parser.add_argument("--min-ratings", type=int, default=100, help="the old gate's min_ratings")
    parser.add_argument(
        "--tau", type=float, default=TAU, help="the mixture's sd (bot.reporting.sequential.TAU)"
    )
    parser.add_argument("--chunk", type=int, default=250, help="runs simulated at once (memory)")
    parser.add_argument("--seed", type=int, default=27)
    args = parser.parse_args(argv)
    if problem := setup_problem(args):
        parser.error(problem)

    started = time.perf_counter()
    null = scenario(args, 0.0, args.seed)
    better = scenario(args, args.effect, args.seed + 1)
    within = args.ticket_sd**2 / (args.ticket_sd**2 + args.agent_sd**2 + np.pi**2 / 3)
    report = {
        "benchmark": "promotion_gate",
        "setup": {
            "runs_per_scenario": args.runs,
            "weekly_looks": args.weeks,
            "tickets_per_week": args.tickets_per_week,
            "candidate_share": args.candidate_share,
            "candidate_tickets_per_week": args.tickets_per_week * args.candidate_share,
            "ratings_per_ticket_probabilities": args.ratings,
            "mean_ratings_per_ticket": round(float(null["ratings_per_ticket"]), 3),
            "agents": args.agents,
            "within_ticket_correlation_latent": round(float(within), 3),
            "current_positive_share": args.positive,
            "better_candidate_effect_points": round(100 * args.effect, 1),
            "max_p": args.alpha,
            "min_tickets": args.min_tickets,
            "old_min_ratings": args.min_ratings,
            "tau": args.tau,
        },
        "no_better_candidate": {
            "new_gate_sequential": rate(int(np.sum(null["new"] > 0)), args.runs),
            "new_gate_says_worse": rate(int(np.sum(null["new_worse"] > 0)), args.runs),
            "old_gate_z_test": rate(int(np.sum(null["old"] > 0)), args.runs),
        },
        "better_candidate": {
            "new_gate_sequential": power(better["new"], args.weeks),
            "old_gate_z_test": power(better["old"], args.weeks),
        },
        "seconds": round(time.perf_counter() - started, 1),
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": cpu_description(),
        "python": platform.python_version(),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The team lead's statistics, checked against published values and a simulated study."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from importlib import resources

import numpy as np
import pytest

from bot.reporting.comparisons import (
    PAIRED,
    UNPAIRED,
    agreement,
    compare,
    ordinal_alpha,
    paired_difference_interval,
    ranking,
    weekly_trend,
)
from bot.store.votes_io import read_votes
from core.domain import Vote

T0 = datetime(2026, 11, 23, 10, tzinfo=UTC)  # a Monday


def vote(ticket: int, model: str, score: int, rater: str = "U1", when: datetime = T0) -> Vote:
    return Vote(ticket, f"t{ticket}-{model}", model, rater, score, "button", when)


def simulated_study(
    rng: random.Random, tickets: int, p_model: float, p_base: float, raters: int = 1
) -> list[Vote]:
    """Tickets of varying difficulty: both models do better on easy ones (positively correlated)."""
    votes = []
    for ticket in range(1, tickets + 1):
        easy = rng.random() < 0.5
        for model, p in (("ft", p_model), ("base", p_base)):
            shifted = min(1.0, p + 0.1) if easy else max(0.0, p - 0.1)
            good = rng.random() < shifted
            score = rng.choice((3, 4, 5)) if good else rng.choice((1, 2))
            votes += [vote(ticket, model, score, rater=f"U{r}") for r in range(raters)]
    return votes


def test_krippendorffs_published_worked_example() -> None:
    """Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
    12 units, missing values; ordinal alpha 0.815."""
    nan = np.nan
    data = np.array(
        [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
            [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
        ]
    )
    assert ordinal_alpha(data) == 0.815


def test_agreement_counts_only_drafts_that_several_agents_rated() -> None:
    votes = [vote(t, "ft", s, rater=r) for t, s in enumerate((1, 2, 3, 4, 5), 1) for r in ("U1", "U2")]
    votes.append(vote(99, "ft", 5, rater="U3"))  # one rater only: not a unit
    perfect = agreement(votes)
    assert perfect.units == 5 and perfect.raters == 2
    assert perfect.krippendorff_alpha_ordinal == 1.0 and perfect.reliable
    noisy = agreement([vote(t, "ft", s, rater=r) for t in range(1, 6) for r, s in (("U1", t), ("U2", 6 - t))])
    assert noisy.krippendorff_alpha_ordinal is not None and noisy.krippendorff_alpha_ordinal < 0
    assert not noisy.reliable
    assert agreement([vote(1, "ft", 4)]).krippendorff_alpha_ordinal is None  # nothing to agree on


def test_the_exact_mcnemar_p_and_the_signed_rank_test_see_a_one_sided_difference() -> None:
    # 10 tickets where exactly one model is positive: 9 for ft, 1 for base; 5 where both are.
    votes = [vote(t, "ft", 4) for t in range(1, 10)] + [vote(t, "base", 2) for t in range(1, 10)]
    votes += [vote(10, "ft", 1), vote(10, "base", 5)]
    votes += [vote(t, m, 4) for t in range(11, 16) for m in ("ft", "base")]
    [result] = compare(votes, ["ft", "base"], "base")
    assert result.test == PAIRED and result.n_pairs == 15
    assert result.mcnemar_p == pytest.approx(2 * 11 / 1024)  # 2 * P(X <= 1), X ~ Bin(10, 1/2)
    assert result.diff_positive_pct == pytest.approx(100 * 8 / 15, abs=0.05)
    low, high = result.diff_ci_pct
    assert 0 < low < result.diff_positive_pct < high <= 100
    assert result.wilcoxon_p < 0.05


def test_better_needs_the_interval_and_the_exact_test_to_agree() -> None:
    # Two tickets, both for ft: Newcombe's interval excludes 0, the exact McNemar p is 0.5.
    few = [vote(t, "ft", 4) for t in (1, 2)] + [vote(t, "base", 2) for t in (1, 2)]
    [result] = compare(few, ["ft", "base"], "base")
    assert result.diff_ci_pct[0] > 0 and result.mcnemar_p == pytest.approx(0.5)
    assert result.verdict == "no clear difference yet"
    # Six for ft, none against: p = 2 / 64 = 0.031, and both agree.
    six = [vote(t, "ft", 4) for t in range(1, 7)] + [vote(t, "base", 2) for t in range(1, 7)]
    [result] = compare(six, ["ft", "base"], "base")
    assert result.mcnemar_p < 0.05 and result.diff_ci_pct[0] > 0 and result.verdict == "better"
    [reverse] = compare(six, ["base", "ft"], "ft")
    assert reverse.verdict == "worse"


def test_identical_models_show_no_difference() -> None:
    votes = [vote(t, m, 1 + t % 5) for t in range(1, 30) for m in ("ft", "base")]
    [result] = compare(votes, ["ft", "base"], "base")
    assert result.diff_positive_pct == 0.0 and result.mcnemar_p == 1.0 and result.wilcoxon_p == 1.0
    assert result.diff_ci_pct[0] < 0 < result.diff_ci_pct[1]


def test_the_paired_interval_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    rng = random.Random(7)
    true_diff, covered, runs = 0.75 - 0.55, 0, 400
    for _ in range(runs):
        a = b = c = d = 0
        for _ticket in range(120):
            easy = rng.random() < 0.5
            first = rng.random() < (0.85 if easy else 0.65)
            second = rng.random() < (0.65 if easy else 0.45)
            a, b, c, d = (
                a + (first and second),
                b + (first and not second),
                c + (second and not first),
                d + (not first and not second),
            )
        low, high = paired_difference_interval(a, b, c, d)
        covered += low <= true_diff <= high
    assert 0.92 <= covered / runs <= 0.985


def test_a_simulated_study_detects_a_real_gain_and_ranks_the_models() -> None:
    votes = simulated_study(random.Random(3), tickets=300, p_model=0.8, p_base=0.5)
    [result] = compare(votes, ["ft", "base"], "base")
    low, high = result.diff_ci_pct
    assert low <= 30.0 <= high and result.mcnemar_p < 0.001 and result.wilcoxon_p < 0.001
    ranked = ranking(votes, ["ft", "base"], bootstrap=50)
    assert [r.model for r in ranked] == ["ft", "base"]
    assert ranked[0].ci[0] > 1 > ranked[1].ci[1]  # the intervals do not overlap 1


def test_the_study_ratings_have_no_ticket_ids_so_the_comparison_is_unpaired() -> None:
    text = resources.files("bot.reporting").joinpath("sample_data/study_ratings.csv").read_text("utf-8")
    votes = read_votes(text)
    models = list(dict.fromkeys(v.model for v in votes))
    results = {r.model: r for r in compare(votes, models, "LLaMa-2-7B")}  # the untuned base
    best = results["LLaMa-2-7B fine-tuned"]
    assert best.test == UNPAIRED and best.n_pairs == 124
    # The study: 104/124 positive against 65/124 for the untuned base, a 31.5-point difference.
    assert best.diff_positive_pct == 31.5
    assert 19 < best.diff_ci_pct[0] < 31.5 < best.diff_ci_pct[1] < 43
    assert best.mcnemar_p < 1e-6 and best.wilcoxon_p < 1e-6
    assert ranking(votes, models) == []  # no tickets, no per-ticket comparisons


def test_the_trend_gives_each_of_the_last_eight_weeks() -> None:
    votes = [vote(1, "ft", 5, when=T0), vote(2, "ft", 1, when=T0 + timedelta(days=2))]
    votes += [vote(3, "ft", 4, when=T0 - timedelta(weeks=3)), vote(4, "ft", 4, when=T0 - timedelta(weeks=9))]
    trend = weekly_trend(votes, ["ft"], now=T0 + timedelta(days=3))
    assert len(trend) == 8 and trend[-1].week_start == datetime(2026, 11, 23, tzinfo=UTC)
    assert (trend[-1].n, trend[-1].positive_pct) == (2, 50.0)
    assert (trend[-4].n, trend[-4].positive_pct) == (1, 100.0)
    assert sum(week.n for week in trend) == 3  # nine weeks ago is outside


def test_report_json_and_csv_carry_the_comparison_ranking_agreement_and_trend(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.store.votes_io import write_votes
    from draftdesk.cli import main

    votes = simulated_study(random.Random(5), tickets=60, p_model=0.8, p_base=0.4, raters=2)
    path = tmp_path / "votes.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        write_votes(votes, out, "csv")

    assert main(["report", "--input", str(path), "--format", "json", "--baseline", "base"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in report["models"]] == ["base", "ft"]  # the study's keys stay
    [comparison] = report["comparisons"]
    assert comparison["model"] == "ft" and comparison["baseline"] == "base" and comparison["n_pairs"] == 60
    assert comparison["test"] == PAIRED and comparison["diff_positive_pct"] > 0
    assert comparison["diff_ci_pct"][0] > 0 and comparison["mcnemar_p"] < 0.05
    assert [r["model"] for r in report["ranking"]] == ["ft", "base"]
    assert report["agreement"]["units"] == 120 and report["agreement"]["raters"] == 2
    assert {w["week_start"] for w in report["trend"]} and len(report["trend"]) == 16

    assert main(["report", "--input", str(path), "--format", "csv", "--baseline", "base"]) == 0
    csv_text = capsys.readouterr().out
    assert "Krippendorff alpha (ordinal)" in csv_text and "p, positive share" in csv_text
    assert main(["report", "--input", str(path), "--baseline", "nobody"]) == 2
    assert "is not one of the models" in capsys.readouterr().err

"""The store, HTTP and promotion-gate benchmarks run end to end on tiny sizes: each prints one JSON
object whose correctness fields (votes stored, queue exact, rates within their intervals) hold. Their
timings are not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(done.stdout)


def test_bench_store_measures_the_store_at_each_size():
    report = run_benchmark("benchmarks.bench_store", "--sizes", "30", "60", "--ops", "5")
    assert set(report["partitioned"]) == {"30", "60"} and "single_file" not in report
    big = report["partitioned"]["60"]
    assert big["export_votes"] == 60 * 6 + 5  # the history's votes and the timed ones
    for figure in ("record_vote", "enqueue", "claim", "draft_by_message"):
        assert big[figure]["n"] == 5 and big[figure]["p99_ms"] >= big[figure]["median_ms"] > 0
    assert report["vote_p99_ratio"] > 0


def test_bench_http_stores_every_click_and_queues_each_ticket_once():
    report = run_benchmark(
        "benchmarks.bench_http", "--tickets", "30", "--clicks", "4", "--webhooks", "10", "--clients", "2"
    )
    run = report["servers"]["waitress"]
    assert run["clicks"]["statuses"] == {"200": 4} and run["clicks"]["all_votes_stored"]
    assert run["webhooks"]["statuses"] == {"200": 10}
    assert run["webhooks"]["queue_holds_exactly_the_distinct_tickets"]


def test_bench_store_burst_measures_the_first_and_last_tickets_of_each_shape():
    report = run_benchmark("benchmarks.bench_store", "--burst", "240", "--history", "30")
    assert report["window_tickets"] == 120
    for shape in ("arriving", "backlog"):
        operations = report[shape]["operations"]
        assert operations["enqueue"]["first"]["n"] == operations["enqueue"]["last"]["n"] == 120
        assert operations["finish"]["first"]["max_bytes_written"] > 0
    arriving = report["arriving"]["operations"]
    assert arriving["add_draft_message"]["first"]["n"] == 360 and arriving["vote"]["last"]["n"] == 240
    # what a write rewrites does not grow with the burst (bytes, unlike time, are exact here)
    assert report["arriving"]["worst_bytes_ratio"] <= 1.1 and report["backlog"]["worst_bytes_ratio"] <= 1.1


def test_bench_http_burst_drafts_and_posts_every_batch_through_the_bot():
    report = run_benchmark("benchmarks.bench_http", "--burst", "40", "--batch", "10")
    assert report["webhook_statuses"] == {"lead": {"200": 40}, "fresh": {"200": 30}}
    assert [b["after_tickets"] for b in report["lead_curve"]] == [0, 10, 20, 30]
    assert all(b["slack_calls"] == 10 * 4 for b in report["lead_curve"])  # a parent and three drafts each
    assert len(report["first_batches_s"]) == len(report["last_batches_s"]) == 3
    assert report["calls_per_batch_constant"] and report["last_over_first"] > 0


def test_bench_engine_overhead_counts_each_sides_host_work_per_step(tmp_path: Path):
    report = run_benchmark(
        "benchmarks.bench_engine_overhead",
        *("--rows", "2", "--short", "2", "--long", "5", "--repeats", "1", "--models-dir", str(tmp_path)),
    )
    figures = report["rows"]["2"]
    for side in ("engine", "reference"):
        # ms per step is a difference of two timed runs: at this size and on a busy machine it can
        # come out below zero, so only its presence is checked; the counts are exact
        assert figures[side]["ops_per_step"] > 100 and isinstance(figures[side]["ms_per_step"], float)
    # The engine's steps never wait on the device (a look every 8 steps at most); generate() does.
    assert figures["engine"]["syncs_per_step"] <= 0.5 < figures["reference"]["syncs_per_step"]
    assert figures["ratios"]["ops"] == round(
        figures["engine"]["ops_per_step"] / figures["reference"]["ops_per_step"], 3
    )


def test_bench_gpu_engine_runs_its_whole_path_on_the_cpu():
    """The GPU script's path (in-memory random bases, their adapters, the three models) at a
    size the CPU runs in seconds, so that it works the day a GPU is at hand."""
    report = run_benchmark(
        "benchmarks.bench_gpu_engine",
        *("--device", "cpu", "--shape", "mini", "--rows", "2", "--prompt-tokens", "24", "--new-tokens", "3"),
    )
    assert report["compiled"] is False  # compiled steps are for CUDA
    for key in ("llama_pair_2_rows", "gptj_2_rows"):
        assert report[key]["rows"] == 2 and report[key]["tokens_per_s"] > 0
        assert report[key]["limit_tokens_per_s"] > report[key]["tokens_per_s"]
    assert report["one_ticket_three_drafts_s"] > 0


def test_bench_promotion_gate_reports_both_gates_under_no_effect_and_a_large_one():
    report = run_benchmark(
        "benchmarks.bench_promotion_gate",
        *("--runs", "40", "--weeks", "6", "--chunk", "20", "--positive", "0.5", "--effect", "0.3"),
    )
    null = report["no_better_candidate"]
    for gate in ("new_gate_sequential", "new_gate_says_worse", "old_gate_z_test"):
        assert (
            null[gate]["runs"] == 40
            and 0 <= null[gate]["ci95"][0] <= null[gate]["rate"] <= null[gate]["ci95"][1]
        )
    assert (
        report["setup"]["candidate_tickets_per_week"] == 40
        and 1 < report["setup"]["mean_ratings_per_ticket"] < 3
    )
    better = report["better_candidate"]["new_gate_sequential"]
    assert better["promoted_by_week"] == {"4": 1.0} and 1 <= better["median_weeks_to_promotion"] <= 4


def test_bench_promotion_gate_replays_the_ratings_as_the_bot_does():
    """The benchmark's vectorised replay gives the p-value and interval ``bot.reporting.sequential`` computes
    from the same ratings as events, so its figures are the gate's."""
    import argparse

    import numpy as np

    from benchmarks.bench_promotion_gate import SLOTS, new_gate_paths, simulate
    from bot.reporting.sequential import CANDIDATE, CURRENT, interval, sequential_test

    args = argparse.Namespace(
        weeks=3, tickets_per_week=30, candidate_share=0.5, ratings=[0.5, 0.3, 0.2], agents=6,
        ticket_sd=1.0, agent_sd=0.5, positive=0.6,
    )  # fmt: skip
    trials = simulate(np.random.default_rng(5), 2, args, effect=0.15)
    paths = new_gate_paths(trials, min_tickets=10, alpha=0.05, tau=0.1)
    low, high = interval(paths)
    for run in range(2):
        for tickets in (45, trials.candidate.shape[1]):  # a look mid-trial and the last one
            events = [
                (CANDIDATE if trials.candidate[run, t] else CURRENT, t, float(trials.positive[run, t, j]))
                for t in range(tickets)
                for j in range(trials.ratings[run, t])
            ]
            bot = sequential_test(events, min_units=10, alpha=0.05, tau=0.1)
            last = tickets * SLOTS - 1
            assert bot.p == pytest.approx(paths.p[run, last]) and bot.diff == pytest.approx(
                paths.diff[run, last]
            )
            assert bot.ci == pytest.approx((low[run, last], high[run, last]))


def test_bench_promotion_gate_old_gate_is_statsmodels_two_proportion_z_test():
    import numpy as np
    from statsmodels.stats.proportion import proportions_ztest

    from benchmarks.bench_promotion_gate import old_gate_wins

    cases = [(70, 100, 55, 100), (60, 100, 55, 100), (30, 40, 20, 45), (55, 100, 70, 100)]
    k1, n1, k2, n2 = (np.array(column) for column in zip(*cases, strict=True))
    got = old_gate_wins(k1, n1, k2, n2, alpha=0.05, minimum=40)
    expected = [
        a / b > c / d and b >= 40 and d >= 40 and proportions_ztest([a, c], [b, d])[1] < 0.05
        for a, b, c, d in cases
    ]
    assert got.tolist() == expected == [True, False, True, False]


def test_bench_promotion_gate_refuses_a_set_up_it_cannot_simulate_in_one_line():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_promotion_gate", "--ratings", "0.5", "0.5", "0.5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith("--ratings: 3 probabilities of 1..3 ratings that add up to 1")
    )

"""The store and HTTP benchmarks run end to end on tiny sizes: each prints one JSON object whose
correctness fields (votes stored, queue exact) hold. Their timings are not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(done.stdout)


def test_bench_store_measures_both_layouts_at_each_size():
    report = run_benchmark(
        "benchmarks.bench_store", "--sizes", "30", "60", "--old-sizes", "30", "--ops", "5", "--old-ops", "3"
    )
    assert set(report["partitioned"]) == {"30", "60"} and set(report["single_file"]) == {"30"}
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


def test_bench_engine_overhead_counts_each_sides_host_work_per_step(tmp_path: Path):
    report = run_benchmark(
        "benchmarks.bench_engine_overhead",
        *("--rows", "2", "--short", "2", "--long", "5", "--repeats", "1", "--models-dir", str(tmp_path)),
    )
    figures = report["rows"]["2"]
    for side in ("engine", "reference"):
        assert figures[side]["ops_per_step"] > 100 and figures[side]["ms_per_step"] > 0
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

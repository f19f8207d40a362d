"""Candidates earn their place: `models status`, `promote` (only a winner, or --force), `rollback`;
the report, the digest and the export per model and adapter version. Real store files, real CLI."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store.partitioned import PartitionedStore, history_folder
from core.domain import Vote
from draftdesk.cli import main
from tests.test_model_versions import versions

NOW = datetime.now(UTC) - timedelta(hours=1)


def rated_store(path: Path, tickets: int, positive: dict[str, float], raters: int = 1) -> None:
    """``tickets`` tickets, each drafted by "ft" (v1 on odd tickets, v2 on even ones: the candidate
    serves half) and the untuned "base"; positive at the given share per version, each draft rated
    alike by ``raters`` agents."""
    store = PartitionedStore(path)
    for t in range(1, tickets + 1):
        version = "v1" if t % 2 else "v2"
        store.create_round(t, 10 * t, [("A", "ft"), ("B", "base")])
        store.save_generated(f"t{t}r1A", f"reply {t}", None, model_version=version, prompt=f"prompt {t}")
        store.save_generated(f"t{t}r1B", f"base reply {t}", None, prompt=f"prompt {t}")
        for label, model, key in (("A", "ft", version), ("B", "base", "base")):
            index = (t - 1) // 2 if model == "ft" else t - 1
            share = positive[key]
            score = 4 if int((index + 1) * share) > int(index * share) else 2  # positives evenly spread
            at = NOW - timedelta(minutes=t)
            tuned = None if model == "base" else version
            for rater in range(1, raters + 1):
                store.record_vote(
                    Vote(t, f"t{t}r1{label}", model, f"U{rater}", score, "button", at, model_version=tuned)
                )
    store.close()


@pytest.fixture
def setup(tmp_path: Path):
    adapters = versions(tmp_path / "adapters", "ft", "v1", "v2", latest="v1")
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[storage]
path = "./store.json"

[promotion]
min_tickets = 40

[[models]]
name = "ft"
base_model = "base"
adapter = "{adapters}"
candidate = "v2"

[[models]]
name = "base"
base_model = "base"
"""
    )
    return config, adapters, tmp_path / "store.json"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_winning_candidate_is_promoted_with_its_evidence_and_can_be_rolled_back(setup, capsys):
    config, adapters, store = setup
    rated_store(store, 200, {"v1": 0.5, "v2": 0.85, "base": 0.3})
    code, out, _ = run(capsys, "models", "status", "--config", str(config))
    assert code == 0
    assert "ft: current v1: 50.0% positive, 100 tickets (100 ratings)" in out
    assert "candidate v2: 85.0% positive, 100 tickets (100 ratings)" in out
    assert "candidate - current: +35.0 points positive (95% always-valid CI +" in out
    assert "sequential p=<0.001 (by ticket; valid at every look)" in out and "verdict: wins" in out
    assert "ft @ v2 vs base" in out  # each paired with the baseline on the same tickets
    assert "base: current untuned base" in out
    code, out, _ = run(capsys, "models", "status", "--config", str(config), "--format", "json")
    ft, base = json.loads(out)  # every model, as the text lists them
    assert (ft["model"], ft["verdict"], base["model"], base["current"], base["candidate"]) == (
        "ft",
        "wins",
        "base",
        None,
        None,
    )
    assert (base["current_ratings"], base["current_positive_pct"]) == (200, 30.0)
    against = {row["model"]: row for row in ft["against_baseline"]}
    assert set(against) == {"ft @ v1", "ft @ v2"} and against["ft @ v2"]["baseline"] == "base"
    assert against["ft @ v2"]["verdict"] == "better" and against["ft @ v2"]["tickets"] > 0

    code, out, _ = run(capsys, "models", "promote", "ft", "--config", str(config))
    assert code == 0 and "promoted v2 to current for ft (was v1" in out
    assert (adapters / "LATEST").read_text().strip() == "v2"
    [promotion] = json.loads((adapters / "v2" / "manifest.json").read_text())["promotions"]
    assert promotion["replaced"] == "v1" and promotion["forced"] is False
    evidence = promotion["evidence"]
    assert (evidence["current_tickets"], evidence["candidate_tickets"], evidence["unit"]) == (
        100,
        100,
        "ticket",
    )
    assert evidence["verdict"] == "wins" and evidence["p_sequential"] < 0.001 and evidence["max_p"] == 0.05
    low, high = evidence["diff_ci_pct"]
    assert 0 < low < evidence["diff_positive_pct"] == 35.0 < high
    assert json.loads((adapters / "v2" / "manifest.json").read_text())["method"] == "dpo"  # kept

    code, out, _ = run(capsys, "models", "rollback", "ft", "--config", str(config))
    assert code == 0 and "from v2 to v1" in out and (adapters / "LATEST").read_text().strip() == "v1"


def test_a_candidate_that_has_not_won_stays_a_candidate_unless_forced(setup, capsys):
    config, adapters, store = setup
    rated_store(store, 60, {"v1": 0.5, "v2": 0.9, "base": 0.3})  # better, but 30 ratings each of 40
    code, out, err = run(capsys, "models", "promote", "ft", "--config", str(config))
    assert code == 1 and "too few tickets yet (10 more each for the minimum of 40)" in out
    assert "+40.0 points positive so far; the test starts at 40 tickets each" in out
    assert "not promoted" in err and (adapters / "LATEST").read_text().strip() == "v1"

    shutil.rmtree(history_folder(store))
    store.unlink()
    rated_store(store, 300, {"v1": 0.7, "v2": 0.4, "base": 0.3})  # plenty of ratings: worse
    code, out, err = run(capsys, "models", "promote", "ft", "--config", str(config))
    assert code == 1 and "verdict: worse" in out and (adapters / "LATEST").read_text().strip() == "v1"
    code, out, _ = run(capsys, "models", "promote", "ft", "--force", "--config", str(config))
    assert code == 0 and (adapters / "LATEST").read_text().strip() == "v2"
    [promotion] = json.loads((adapters / "v2" / "manifest.json").read_text())["promotions"]
    assert promotion["forced"] is True and promotion["evidence"]["verdict"] == "worse"


def test_promote_says_in_one_line_what_is_missing(setup, capsys, tmp_path):
    config, _adapters, _store = setup
    code, _, err = run(capsys, "models", "promote", "nope", "--config", str(config))
    assert code == 2 and "no [[models]] entry named 'nope' (models: ft, base)" in err
    code, _, err = run(capsys, "models", "promote", "base", "--config", str(config))
    assert code == 2 and "has no candidate to promote" in err
    code, _, err = run(capsys, "models", "rollback", "ft", "--config", str(config))
    assert code == 2 and "nothing to roll back to" in err


def test_report_digest_and_export_show_each_version(setup, capsys):
    config, _adapters, store = setup
    rated_store(store, 20, {"v1": 0.5, "v2": 1.0, "base": 0.5})
    code, out, _ = run(capsys, "report", "--config", str(config))
    assert code == 0
    table1 = out.split("Table 2")[0]
    assert (
        "\nft @ v2  0   0  0  10  0  10  4.00\n" in table1
        and "\nft @ v1  0   5  0   5  0  10  3.00\n" in table1
    )
    code, out, _ = run(capsys, "report", "--config", str(config), "--format", "json")
    by_row = {m["model"]: (m["n"], m["mean"]) for m in json.loads(out)["models"]}
    assert by_row == {"ft @ v1": (10, 3.0), "ft @ v2": (10, 4.0), "base": (20, 3.0)}

    code, out, _ = run(capsys, "digest", "--preview", "--config", str(config))
    assert code == 0 and "ft @ v2" in out and "Candidates" in out and "candidate v2: 100.0% positive" in out

    code, out, _ = run(capsys, "votes", "export", "--config", str(config))
    exported = list(csv.DictReader(io.StringIO(out)))
    assert {row["model_version"] for row in exported if row["model"] == "ft"} == {"v1", "v2"}
    assert {row["model_version"] for row in exported if row["model"] == "base"} == {""}


def test_a_candidate_that_names_no_trained_version_is_said_so_with_the_versions_there(setup, capsys):
    config, adapters, _store = setup
    config.write_text(config.read_text().replace('candidate = "v2"', 'candidate = "2026-typo"'))
    code, out, _ = run(capsys, "models", "status", "--config", str(config))
    assert code == 0 and "no ratings" not in out.split("\n")[0]
    assert f"ft: candidate 2026-typo: no adapter there (versions in {adapters}: v1, v2)" in out
    code, _, err = run(capsys, "models", "promote", "ft", "--force", "--config", str(config))
    assert code == 2 and "versions in" in err and "v1, v2" in err
    assert (adapters / "LATEST").read_text().strip() == "v1"


def test_agents_who_agree_on_a_draft_count_as_one_ticket_not_as_many_ratings(setup, capsys):
    """Five agents rating each draft alike: 200 ratings a version, but 40 tickets of evidence. The
    rating-by-rating z test called +20 points on them a win (p < 0.001); by ticket it is undecided."""
    config, adapters, store = setup
    rated_store(store, 80, {"v1": 0.5, "v2": 0.7, "base": 0.5}, raters=5)
    code, out, err = run(capsys, "models", "promote", "ft", "--config", str(config))
    assert "current v1: 50.0% positive, 40 tickets (200 ratings)" in out
    assert "candidate v2: 70.0% positive, 40 tickets (200 ratings)" in out
    assert code == 1 and "verdict: no clear difference yet" in out and "not promoted" in err
    assert (adapters / "LATEST").read_text().strip() == "v1"
    code, out, _ = run(capsys, "models", "status", "--config", str(config), "--format", "json")
    ft = json.loads(out)[0]
    assert (ft["current_tickets"], ft["current_ratings"], ft["diff_positive_pct"]) == (40, 200, 20.0)
    assert ft["p_sequential"] > 0.05 and ft["diff_ci_pct"][0] < 0 < ft["diff_ci_pct"][1]


def test_the_old_min_ratings_key_still_works_as_the_minimum_of_tickets(setup, capsys, caplog):
    config, _adapters, store = setup
    config.write_text(config.read_text().replace("min_tickets = 40", "min_ratings = 40"))
    rated_store(store, 60, {"v1": 0.5, "v2": 0.9, "base": 0.3})
    code, out, _ = run(capsys, "models", "status", "--config", str(config))
    assert code == 0 and "too few tickets yet (10 more each for the minimum of 40)" in out
    assert "promotion.min_ratings is deprecated: rename it to min_tickets" in caplog.text

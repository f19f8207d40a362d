import csv
import io
import json
from datetime import UTC, date, datetime
from importlib import resources

import pytest

from bot.reporting.report import Report, ReportExtras, render
from bot.reporting.stats import model_stats, wilson_interval
from bot.store.votes_io import VotesFileError, read_votes, write_votes
from core.domain import Vote

STUDY_TABLE_1 = {
    "GPT-J-6B fine-tuned": {"1": 18, "2": 21, "3": 31, "4": 28, "5": 26},
    "LLaMa-2-7B fine-tuned": {"1": 9, "2": 11, "3": 20, "4": 41, "5": 43},
    "LLaMa-2-7B": {"1": 28, "2": 31, "3": 29, "4": 23, "5": 13},
}
STUDY_TABLE_2 = {  # (negative %, positive %) as published
    "GPT-J-6B fine-tuned": (31.5, 68.5),
    "LLaMa-2-7B fine-tuned": (16.1, 83.9),
    "LLaMa-2-7B": (47.6, 52.4),
}


def study_votes():
    text = resources.files("bot.reporting").joinpath("sample_data/study_ratings.csv").read_text("utf-8")
    return read_votes(text, "study_ratings.csv")


def test_the_study_ratings_reproduce_its_tables():
    report = json.loads(render(Report(model_stats(study_votes())), "json"))
    by_model = {row["model"]: row for row in report["models"]}
    assert set(by_model) == set(STUDY_TABLE_1)
    for model, counts in STUDY_TABLE_1.items():
        row = by_model[model]
        assert row["counts"] == counts
        assert row["n"] == 124
        assert (row["negative_pct"], row["positive_pct"]) == STUDY_TABLE_2[model]
    assert by_model["LLaMa-2-7B fine-tuned"]["mean"] == pytest.approx(
        (9 + 22 + 60 + 164 + 215) / 124, abs=0.005
    )
    low, high = by_model["LLaMa-2-7B fine-tuned"]["positive_ci95_pct"]
    assert low < 83.9 < high and high - low < 15


def test_json_shape():
    votes = [Vote(1, "d1", "m", "U1", 5, "button", datetime(2026, 1, 5, tzinfo=UTC))]
    report = json.loads(
        render(Report(model_stats(votes, ["m", "silent"]), date(2026, 1, 1), date(2026, 1, 7)), "json")
    )
    assert report["since"] == "2026-01-01" and report["until"] == "2026-01-07"
    first, silent = report["models"]
    assert set(first) >= {"model", "counts", "n", "mean", "negative_pct", "positive_pct"}
    assert first["counts"] == {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}
    assert silent == {**silent, "n": 0, "mean": None, "positive_pct": None}


def test_text_markdown_and_csv_show_both_tables():
    rows = model_stats(study_votes())
    text = render(Report(rows), "text")
    assert "Table 1" in text and "Table 2" in text and "83.9" in text and "LLaMa-2-7B fine-tuned" in text
    markdown = render(Report(rows), "markdown")
    assert "| Model | 1 | 2 | 3 | 4 | 5 | n | Mean |" in markdown
    parsed = list(csv.DictReader(io.StringIO(render(Report(rows), "csv"))))
    assert {r["model"]: r["positive_pct"] for r in parsed}["LLaMa-2-7B"] == "52.4"
    low, high = next(
        (r["positive_ci95_low"], r["positive_ci95_high"]) for r in parsed if r["model"] == "LLaMa-2-7B"
    )
    assert float(low) < 52.4 < float(high)  # Table 2's interval, as in the text report


def test_wilson_interval_known_value():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_votes_round_trip(fmt):
    votes = [
        Vote(10, "t10r1A", "llama", "U1", 4, "button", datetime(2026, 2, 1, 12, tzinfo=UTC)),
        Vote(11, "t11r1B", 'gptj, "quoted"', "U2", 1, "reaction", datetime(2026, 2, 2, tzinfo=UTC)),
    ]
    out = io.StringIO()
    assert write_votes(votes, out, fmt) == 2
    assert read_votes(out.getvalue()) == votes


def test_votes_file_errors_name_the_line():
    with pytest.raises(VotesFileError, match="missing column"):
        read_votes("a,b\n1,2\n")
    with pytest.raises(VotesFileError, match=":3: score must be 1-5"):
        read_votes("model,score\nm,4\nm,7\n", "f.csv")
    with pytest.raises(VotesFileError, match=":2: not valid JSON"):
        read_votes('{"model": "m", "score": 1}\n{oops\n', "f.jsonl")


def test_reasons_reach_every_format_and_round_trip_through_the_votes_file():
    from bot.reporting.reasons import top_reasons

    at = datetime(2026, 3, 2, tzinfo=UTC)
    votes = [
        Vote(1, "t1r1A", "ft", "U1", 2, "button", at, "wrong_facts"),
        Vote(1, "t1r1A", "ft", "U2", 1, "button", at, "other", "promised a refund we don't give"),
        Vote(1, "t1r1B", "base", "U1", 5, "button", at),
    ]
    out = io.StringIO()
    write_votes(votes, out, "csv")
    assert read_votes(out.getvalue()) == votes  # the export carries reason and note
    rows, reasons = model_stats(votes), top_reasons(votes, ["ft", "base"])
    report = json.loads(render(Report(rows, extras=ReportExtras(reasons=reasons)), "json"))
    assert report["reasons"] == [
        {"model": "ft", "reason": "wrong_facts", "label": "Wrong facts", "count": 1, "share_pct": 50.0},
        {"model": "ft", "reason": "other", "label": "Other", "count": 1, "share_pct": 50.0},
    ]
    csv_tables = render(Report(rows, extras=ReportExtras(reasons=reasons)), "csv").split("\n\n")
    assert list(csv.reader(io.StringIO(csv_tables[-1])))[1] == ["ft", "Wrong facts", "1", "50.0"]
    with_reasons = Report(rows, extras=ReportExtras(reasons=reasons))
    for fmt in ("text", "markdown"):
        assert "Why drafts rated 1-2 failed" in render(with_reasons, fmt)
    assert "Why drafts" not in render(Report(rows), "text")
    with pytest.raises(VotesFileError, match="reason must be one of"):
        read_votes("model,score,reason\nft,2,boring\n")


def test_the_reply_actually_sent_reaches_every_format():
    from bot.reporting.outcomes import OutcomeStats

    rows = model_stats([Vote(1, "t1r1A", "ft", "U1", 4, "button", datetime(2026, 3, 2, tzinfo=UTC))])
    sent = [OutcomeStats("ft", 4, 3, 80.0, 0.1), OutcomeStats("base", 0, 0, None, None)]
    report = json.loads(render(Report(rows, extras=ReportExtras(sent=sent)), "json"))
    assert report["reply_sent"][0] == {
        "model": "ft",
        "answered": 4,
        "sent": 3,
        "sent_pct": 75.0,
        "mean_chrf": 80.0,
        "median_edit_distance": 0.1,
    }
    table = render(Report(rows, extras=ReportExtras(sent=sent)), "csv").split("\n\n")[-1]
    assert list(csv.reader(io.StringIO(table)))[1:] == [["ft", "4", "3", "75.0", "80.0", "0.100"]]
    assert "The reply actually sent" in render(Report(rows, extras=ReportExtras(sent=sent)), "markdown")

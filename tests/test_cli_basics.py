"""The command line's own manners: --version, global options anywhere, one-line errors, the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from draftdesk.cli import main

REPO = Path(__file__).resolve().parents[1]
STUDY = str(REPO / "bot/reporting/sample_data/study_ratings.csv")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("draftdesk ")


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "debug", "report", "--input", STUDY],
        ["report", "--input", STUDY, "--log-level", "WARNING"],
    ],
)
def test_the_log_level_goes_before_or_after_the_command(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 0
    assert "Table 1" in capsys.readouterr().out


def test_a_wrong_log_level_is_one_line_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--input", STUDY, "--log-level", "verbose"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "DEBUG, INFO, WARNING, ERROR" in err and "Traceback" not in err


def test_a_folder_as_votes_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--input", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a folder: pass a votes file" in err


def test_a_missing_votes_file_is_one_line_saying_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--input", str(tmp_path / "votes.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err and "draftdesk votes export" in err


def test_a_votes_file_saved_in_a_legacy_encoding_is_one_line_saying_how_to_save_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    votes = tmp_path / "votes.csv"
    votes.write_bytes("model,score\nmodèle,3\n".encode("cp1252"))  # Excel's plain "CSV"
    assert main(["report", "--input", str(votes)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not UTF-8" in err and "CSV UTF-8" in err


def test_a_chart_into_a_missing_folder_is_refused_before_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--input", STUDY, "--chart", str(tmp_path / "no" / "chart.png")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "its folder does not exist" in err


def test_every_report_format_ends_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    for format_ in ("text", "markdown", "json", "csv"):
        assert main(["report", "--input", STUDY, "--format", format_]) == 0
        assert capsys.readouterr().out.endswith("\n"), format_


def test_prepare_into_a_file_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "dataset"
    blocker.write_text("")
    assert main(["finetune", "prepare", "--in", str(tmp_path), "--out", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out" in err and "is a file: pass a folder" in err


def test_a_demo_folder_that_cannot_be_written_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["demo", "--quick", "--workdir", str(blocker / "demo"), "--cache", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(blocker / "demo") in err and "--workdir" in err


def test_the_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("run", "report", "votes", "demo", "finetune", "serve-models", "slack"):
        assert f"    {command} " in out or f"    {command}\n" in out, command


def test_slack_manifest_follows_the_configs_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[slack]\nmode = "http"\nchannel = "C1"\n')
    assert main(["slack", "manifest", "--config", str(config)]) == 2
    assert "--public-url" in capsys.readouterr().err
    assert (
        main(["slack", "manifest", "--config", str(config), "--public-url", "https://bot.example.com"]) == 0
    )
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["settings"]["interactivity"]["request_url"] == "https://bot.example.com/slack/events"
    assert main(["slack", "manifest", "--mode", "socket"]) == 0
    assert json.loads(capsys.readouterr().out)["settings"]["socket_mode_enabled"] is True
    assert main(["slack", "manifest", "--mode", "socket", "--public-url", "https://bot.example.com"]) == 0
    printed = capsys.readouterr()
    assert "--public-url is not used" in printed.err and "request_url" not in printed.out


def test_digest_preview_prints_the_next_digest_and_posts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime, timedelta

    from bot.store.partitioned import PartitionedStore
    from core.domain import Vote

    store = PartitionedStore(tmp_path / "store.json")
    yesterday = datetime.now(UTC) - timedelta(days=1)
    for ticket in range(1, 4):
        store.record_vote(Vote(ticket, f"t{ticket}A", "ft", "U1", 5, "button", yesterday))
        store.record_vote(Vote(ticket, f"t{ticket}B", "base", "U1", 2, "button", yesterday))
    store.close()
    config = tmp_path / "config.toml"
    config.write_text(
        '[storage]\npath = "store.json"\n[digest]\nbaseline = "base"\n'
        '[[models]]\nname = "ft"\nbase_model = "/m"\nadapter = "/a"\n'
        '[[models]]\nname = "base"\nbase_model = "/m"\n'
    )
    assert main(["digest", "--preview", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "Weekly draft ratings" in out and "6 ratings" in out
    assert "*Against base*" in out and "*ft*: tickets positive (raters' mean 3+) +100.0 points" in out
    # Three tickets, all for ft: the interval excludes 0, but the exact test (p = 0.25) shows nothing yet.
    assert "p=0.250, 3 tickets: no clear difference yet" in out


def test_report_on_a_store_still_in_the_single_file_layout_reads_every_vote_and_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """After an upgrade, before the first `draftdesk run`: the report answers (votes, reasons, the
    replies sent) from a migrated copy, says so in one line, and does not change the file."""
    old = Path(__file__).parent / "fixtures" / "store" / "single_file_v1.json"
    (tmp_path / "store.json").write_bytes(old.read_bytes())
    config = tmp_path / "config.toml"
    config.write_text(
        '[storage]\npath = "store.json"\n[digest]\nbaseline = "base"\n'
        + "".join(f'[[models]]\nname = "{m}"\nbase_model = "/m"\n' for m in ("base", "ft-v1", "ft-v2"))
    )
    args = ["report", "--since", "2026-03-01", "--until", "2026-03-20", "--format", "json"]
    assert main([*args, "--config", str(config)]) == 0
    printed = capsys.readouterr()
    report = json.loads(printed.out)
    assert sum(row["n"] for row in report["models"]) == 4
    assert [(r["model"], r["reason"]) for r in report["reasons"]] == [("base", "other")]
    sent = {row["model"]: (row["sent"], row["answered"], row["mean_chrf"]) for row in report["reply_sent"]}
    assert sent == {"base": (0, 1, 41.2), "ft-v1": (1, 1, 88.5), "ft-v2": (0, 1, 63.0)}  # the old outcomes
    warnings = [r.getMessage() for r in caplog.records if "single-file layout" in r.getMessage()]
    assert len(warnings) == 1 and "`draftdesk run` migrates it" in warnings[0]
    assert "Traceback" not in printed.err
    assert (tmp_path / "store.json").read_bytes() == old.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "store.json"]


def test_serve_models_with_a_missing_model_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRAFTDESK_MODELS_API_KEY", "a-token")
    config = tmp_path / "config.toml"
    config.write_text('[[models]]\nname = "m"\nbase_model = "./missing-model"\n')
    assert main(["serve-models", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "draftdesk: model 'm': base model" in err and "not found" in err and "Traceback" not in err


def test_a_period_over_votes_without_dates_says_why_they_are_left_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["report", "--input", STUDY, "--since", "2026-01-01"]) == 0
    out, err = capsys.readouterr()
    assert "No votes in this period." in out
    assert "372 vote(s)" in err and "have no voted_at" in err and "drop those options" in err

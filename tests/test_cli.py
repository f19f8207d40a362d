import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def draftdesk(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("draftdesk", path=str(Path(sys.executable).parent)) or "draftdesk"
    clean_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ZENDESK_", "DRAFTDESK_"))
    }
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, env={**clean_env, **(env or {})}, cwd=cwd, timeout=120
    )


def test_run_with_a_broken_config_lists_every_problem_and_exits(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[slack]\nmode = "pigeon"\n[digest]\nhour = 25\n[[models]]\nname = "m"\n')
    result = draftdesk("run", "--config", str(config))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    for key in [
        "slack.mode",
        "slack.channel",
        "digest.hour",
        "zendesk.subdomain",
        "models[0].base_model",
        "SLACK_BOT_TOKEN",
        "ZENDESK_EMAIL",
    ]:
        assert any(key in line for line in lines), key
    assert "Traceback" not in result.stderr


def test_config_path_from_the_environment(tmp_path):
    result = draftdesk("run", env={"DRAFTDESK_CONFIG": str(tmp_path / "nowhere.toml")})
    assert result.returncode == 2 and "nowhere.toml not found" in result.stderr


def test_secrets_are_not_printed(tmp_path):
    config = tmp_path / "config.toml"
    shutil.copy(REPO / "config.toml", config)
    secret = "xoxb-fake-test-sentinel"  # not a token: a marker that must never be printed
    result = draftdesk("run", "--config", str(config), env={"SLACK_BOT_TOKEN": secret})
    assert result.returncode == 2
    assert secret not in result.stderr + result.stdout


def test_report_from_the_study_file():
    result = draftdesk(
        "report", "--input", str(REPO / "bot/reporting/sample_data/study_ratings.csv"), "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    models = {m["model"]: m["positive_pct"] for m in json.loads(result.stdout)["models"]}
    assert models == {"GPT-J-6B fine-tuned": 68.5, "LLaMa-2-7B fine-tuned": 83.9, "LLaMa-2-7B": 52.4}


def test_report_errors_are_one_clear_line(tmp_path):
    bad = tmp_path / "votes.csv"
    bad.write_text("model,score\nm,9\n")
    result = draftdesk("report", "--input", str(bad))
    assert (
        result.returncode == 2 and "score must be 1-5" in result.stderr and "Traceback" not in result.stderr
    )
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    missing = draftdesk("votes", "export", "--config", str(tmp_path / "config.toml"))
    assert missing.returncode == 2 and "no store at" in missing.stderr


def test_run_with_slack_unreachable_ends_in_one_line_without_a_traceback(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(
        '[slack]\nmode = "http"\nchannel = "C1"\napi_url = "http://127.0.0.1:9/api/"\n'
        '[zendesk]\nurl = "http://127.0.0.1:9"\n'
        f'[storage]\npath = "{tmp_path / "store.json"}"\n'
        '[[models]]\nname = "m"\nbase_model = "/nowhere"\n'
    )
    secrets = {
        "SLACK_BOT_TOKEN": "xoxb-1",
        "SLACK_SIGNING_SECRET": "s",
        "ZENDESK_EMAIL": "a@example.com",
        "ZENDESK_API_TOKEN": "t",
        "ZENDESK_WEBHOOK_SECRET": "w",
    }
    result = draftdesk("run", "--config", str(config), env=secrets)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    [head] = [line for line in result.stderr.splitlines() if line.startswith("draftdesk:")]
    assert "cannot start" in head, result.stderr[-1500:]
    problems = [line for line in result.stderr.splitlines() if line.startswith("  - ")]
    assert problems and all(len(p) < 300 for p in problems)  # one line each, every problem at once
    assert any("could not reach Slack" in p for p in problems)


def _votes_and_config(tmp_path: Path) -> tuple[Path, Path]:
    """Three models, none first by name or without an adapter that [digest] baseline names."""
    votes = tmp_path / "votes.csv"
    rows = ["ticket_id,draft_id,model,rater,score,source,voted_at"]
    for ticket in range(1, 5):
        for model, score in (("alpha", 5), ("beta", 3), ("zeta", 1)):
            rows.append(
                f"{ticket},t{ticket}{model},{model},U1,{score},button,2026-03-0{ticket}T10:00:00+00:00"
            )
    votes.write_text("\n".join(rows) + "\n")
    config = tmp_path / "config.toml"
    config.write_text(
        '[digest]\nbaseline = "zeta"\n'
        '[[models]]\nname = "zeta"\nbase_model = "/m"\nadapter = "/a1"\n'
        '[[models]]\nname = "beta"\nbase_model = "/m"\n'
        '[[models]]\nname = "alpha"\nbase_model = "/m"\nadapter = "/a2"\n'
    )
    return votes, config


def test_report_from_a_votes_file_with_a_config_uses_its_baseline_and_order(tmp_path):
    votes, config = _votes_and_config(tmp_path)
    result = draftdesk("report", "--input", str(votes), "--config", str(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["baseline"] == "zeta"
    assert [c["baseline"] for c in report["comparisons"]] == ["zeta", "zeta"]
    assert [m["model"] for m in report["models"]] == ["zeta", "beta", "alpha"]
    chosen = draftdesk(
        "report", "--input", str(votes), "--config", str(config), "--baseline", "alpha", "--format", "json"
    )
    assert chosen.returncode == 0, chosen.stderr
    assert json.loads(chosen.stdout)["baseline"] == "alpha"  # --baseline still wins


def test_report_from_a_votes_file_without_a_config_reads_no_config_toml(tmp_path):
    """A votes file may come from another deployment: ./config.toml is not assumed, only a named one."""
    votes, config = _votes_and_config(tmp_path)
    result = draftdesk("report", "--input", str(votes), "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [m["model"] for m in report["models"]] == ["alpha", "beta", "zeta"]
    named = draftdesk(
        "report",
        "--input",
        str(votes),
        "--format",
        "json",
        cwd=tmp_path,
        env={"DRAFTDESK_CONFIG": str(config)},
    )
    assert named.returncode == 0, named.stderr
    assert json.loads(named.stdout)["baseline"] == "zeta"


def test_report_from_the_store_uses_the_configured_baseline(tmp_path):
    from datetime import UTC, datetime

    from bot.store.partitioned import PartitionedStore
    from core.domain import Vote

    votes, config = _votes_and_config(tmp_path)
    store = PartitionedStore(tmp_path / "store.json")
    for ticket, model, score in ((1, "alpha", 5), (1, "beta", 3), (1, "zeta", 1)):
        when = datetime(2026, 3, 2, tzinfo=UTC)
        store.record_vote(Vote(ticket, f"t1{model}", model, "U1", score, "button", when))
    store.close()
    config.write_text('[storage]\npath = "store.json"\n' + config.read_text())
    result = draftdesk("report", "--config", str(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["baseline"] == "zeta"

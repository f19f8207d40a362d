"""`draftdesk run` checks everything `doctor` checks before opening the store or loading a model, and
says every problem at once, one line each, without a traceback."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

from bot.slack.listeners import new_bolt_app
from draftdesk.cli import main
from integrations.slack import make_web_client
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import DEFAULT_AGENT_ID, FakeZendesk

ROOT = Path(__file__).resolve().parents[1]
DRAFTDESK = str(Path(sys.executable).parent / "draftdesk")  # the installed command
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-preflight-token",
    "SLACK_APP_TOKEN": "xapp-preflight-wrong",
    "ZENDESK_EMAIL": "agent@example.com",
    "ZENDESK_API_TOKEN": "zendesk-preflight-token",
    "ZENDESK_WEBHOOK_SECRET": "zendesk-preflight-secret",
}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once closed


def write_config(tmp_path: Path, slack_api_url: str, zendesk_url: str, models: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[slack]
mode = "socket"
channel = "CDRAFTS"
api_url = "{slack_api_url}"
[zendesk]
url = "{zendesk_url}"
[storage]
path = "store.json"
{models}"""
    )
    return path


def test_run_with_slack_unreachable_exits_with_one_line_per_problem(tmp_path: Path) -> None:
    with FakeZendesk() as zendesk:
        zendesk.add_user(DEFAULT_AGENT_ID, "Customer", "agent@example.com", role="end-user")
        models = '[[models]]\nname = "m"\nbase_model = "/nowhere/base"\n'
        config = write_config(tmp_path, f"http://127.0.0.1:{closed_port()}/api/", zendesk.url, models)
        env = {**os.environ, **SECRETS, "HF_HUB_OFFLINE": "1"}
        result = subprocess.run(
            [DRAFTDESK, "run", "--config", str(config), "--log-level", "DEBUG"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(("draftdesk:", "  - "))]
    assert lines[0] == "draftdesk: cannot start, 5 problem(s) (`draftdesk doctor` shows every check):"
    problems = lines[1:]
    assert [p.split(":")[0] for p in problems] == [
        "  - Slack bot token",
        "  - Slack channel",
        "  - Slack Socket Mode",
        "  - Zendesk API user",
        "  - model m",
    ]
    assert all("could not reach Slack" in p for p in problems[:3])
    assert "check this machine's network" in problems[0] and "SLACK_BOT_TOKEN" not in problems[0]
    assert "end-user: use an agent or admin" in problems[3] and "/nowhere/base: no such folder" in problems[4]
    assert not (tmp_path / "store.json").exists()  # stopped before opening anything
    for name, secret in SECRETS.items():
        assert name == "ZENDESK_EMAIL" or secret not in result.stderr  # not even at DEBUG


def test_every_reachable_problem_is_listed_too(tmp_path: Path, capsys, monkeypatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    with (
        FakeSlack(token=SECRETS["SLACK_BOT_TOKEN"], app_token="xapp-right") as slack,
        FakeZendesk(credentials=(SECRETS["ZENDESK_EMAIL"], "another-token")) as zendesk,
    ):
        slack.channels["CDRAFTS"] = False  # the bot was never invited
        models = f'[[models]]\nname = "m"\nbase_model = "{tmp_path}"\nadapter = "{tmp_path / "none"}"\n'
        config = write_config(tmp_path, slack.api_url, zendesk.url, models)
        assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("draftdesk: cannot start, 4 problem(s)"), err
    assert any(line.startswith("  - Slack channel: CDRAFTS: the bot is not in it") for line in err)
    assert any(line.startswith("  - Slack Socket Mode: invalid_auth") for line in err), err
    assert any(line.startswith("  - Zendesk API user:") and "401" in line for line in err)
    [model] = [line for line in err if line.startswith("  - model m:")]
    assert "incomplete, it lacks config.json" in model and "no trained adapter there" in model  # both at once


def test_bolt_is_built_without_the_unused_token_warning(monkeypatch, caplog) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    with FakeSlack() as slack, caplog.at_level(logging.WARNING):
        app = new_bolt_app(make_web_client("xoxb-from-the-environment", slack.api_url), "secret", True)
    assert app.client.token == "xoxb-from-the-environment"
    assert not [r for r in caplog.records if "unused" in r.getMessage()], caplog.text
    assert os.environ["SLACK_BOT_TOKEN"] == "xoxb-from-the-environment"  # never touched
    with caplog.at_level(logging.WARNING):
        logging.getLogger("slack_bolt.App").warning("some other Bolt warning")
    assert "some other Bolt warning" in caplog.text  # only that one warning is dropped

"""`draftdesk doctor`: a checklist of what `run` needs, with the fix for each problem, nothing started."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from draftdesk.commands.doctor import FAIL, OK, WARN, print_checklist, run_checks
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import FakeZendesk

ENV = {
    "SLACK_BOT_TOKEN": "xoxb-right",
    "SLACK_SIGNING_SECRET": "s",
    "ZENDESK_EMAIL": "agent@example.com",
    "ZENDESK_API_TOKEN": "t",
    "ZENDESK_WEBHOOK_SECRET": "w",
}


def config(tmp_path: Path, slack: FakeSlack, zendesk: FakeZendesk, models: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[slack]
mode = "http"
channel = "C0DRAFTS"
api_url = "{slack.api_url}"
[zendesk]
url = "{zendesk.url}"
{models}
"""
    )
    return path


def test_a_ready_setup_passes_every_check(tmp_path: Path, demo_models: dict) -> None:
    with FakeSlack(token="xoxb-right") as slack, FakeZendesk() as zendesk:
        slack.channels["C0DRAFTS"] = True
        models = f'[[models]]\nname = "ft"\nbase_model = "{demo_models["llama_base"]}"\n'
        models += f'adapter = "{demo_models["llama_adapter"]}"\n'
        checks = run_checks(config(tmp_path, slack, zendesk, models), ENV)
    assert [c.status for c in checks] == [OK] * len(checks), checks
    assert {c.name for c in checks} >= {"configuration", "Slack bot token", "Slack channel", "model ft"}
    out = io.StringIO()
    assert print_checklist(checks, out) == 0 and "all checks passed" in out.getvalue()


def test_each_problem_is_one_line_with_its_fix(tmp_path: Path, demo_models: dict) -> None:
    with FakeSlack(token="xoxb-other") as slack, FakeZendesk() as zendesk:
        models = f'[[models]]\nname = "ft"\nbase_model = "{demo_models["llama_base"]}"\n'
        models += f'adapter = "{tmp_path / "untrained"}"\n'
        models += '[[models]]\nname = "hub"\nbase_model = "someorg/not-downloaded"\n'
        models += f'[[models]]\nname = "trial"\nbase_model = "{demo_models["llama_base"]}"\n'
        models += f'adapter = "{demo_models["llama_adapter"]}"\ncandidate = "./no-such-version"\n'
        checks = {c.name: c for c in run_checks(config(tmp_path, slack, zendesk, models), ENV)}
    assert checks["Slack bot token"].status == FAIL and "invalid_auth" in checks["Slack bot token"].detail
    assert checks["Slack channel"].status == FAIL
    assert checks["model ft"].status == FAIL and "draftdesk finetune train" in checks["model ft"].detail
    trial = checks["model trial"]
    assert trial.status == FAIL and "candidate" in trial.detail and "no adapter there" in trial.detail
    hub = checks["model hub"]
    assert hub.status == FAIL and "hf download someorg/not-downloaded" in hub.detail
    out = io.StringIO()
    assert print_checklist(list(checks.values()), out) == 1
    assert "✘ Slack bot token" in out.getvalue() and "problem(s) to fix" in out.getvalue()


@pytest.mark.parametrize(("member", "status"), [(False, FAIL), (True, OK)])
def test_the_bot_must_be_in_the_drafts_channel(tmp_path: Path, member: bool, status: str) -> None:
    with FakeSlack(token="xoxb-right") as slack, FakeZendesk() as zendesk:
        slack.channels["C0DRAFTS"] = member
        models = '[[models]]\nname = "m"\nbase_model = "/nowhere"\n'
        checks = {c.name: c for c in run_checks(config(tmp_path, slack, zendesk, models), ENV)}
    assert checks["Slack channel"].status == status
    assert WARN not in {c.status for c in checks.values()}


def test_configuration_problems_are_listed_and_nothing_else_is_tried(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[slack]\nchannel = "C1"\n')
    checks = run_checks(path, {})
    assert {c.name for c in checks} == {"configuration"} and all(c.status == FAIL for c in checks)
    assert any("SLACK_BOT_TOKEN" in c.detail for c in checks)


def test_a_missing_or_half_downloaded_base_says_so_and_the_adapter_is_checked_too(tmp_path: Path) -> None:
    half = tmp_path / "models" / "llama"
    half.mkdir(parents=True)
    (half / "config.json").write_text("{}")
    (half / "tokenizer.json").write_text("{}")
    (half / "model.safetensors.index.json").write_text(
        '{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}'
    )
    (half / "model-00001-of-00002.safetensors").write_bytes(b"x")
    with FakeSlack(token="xoxb-right") as slack, FakeZendesk() as zendesk:
        slack.channels["C0DRAFTS"] = True
        models = f'[[models]]\nname = "half"\nbase_model = "{half}"\n'
        models += f'[[models]]\nname = "gone"\nbase_model = "{tmp_path / "models" / "gpt-j-6b"}"\n'
        models += f'adapter = "{tmp_path / "untrained"}"\n'
        checks = {c.name: c for c in run_checks(config(tmp_path, slack, zendesk, models), ENV)}
    half_check = checks["model half"]
    assert half_check.status == FAIL
    assert "incomplete" in half_check.detail and "model-00002-of-00002.safetensors" in half_check.detail
    assert "hf download" in half_check.detail
    gone = checks["model gone"]
    assert gone.status == FAIL and "no such folder" in gone.detail and "--local-dir" in gone.detail
    assert "draftdesk finetune train" in gone.detail  # every problem at once: the adapter's too


def test_a_safetensors_only_download_beside_a_bin_index_is_complete(tmp_path: Path) -> None:
    """`hf download … --exclude "*.bin" --local-dir` keeps pytorch_model.bin.index.json."""
    from models.base_files import missing_base_files

    folder = tmp_path / "llama"
    folder.mkdir()
    for name in ("config.json", "tokenizer.model"):
        (folder / name).write_text("{}")
    shards = {"model.safetensors.index.json": "model-0000{}-of-00002.safetensors"}
    shards["pytorch_model.bin.index.json"] = "pytorch_model-0000{}-of-00002.bin"
    for index, pattern in shards.items():
        weight_map = {f"w{i}": pattern.format(i) for i in (1, 2)}
        (folder / index).write_text(json.dumps({"weight_map": weight_map}))
    for i in (1, 2):
        (folder / f"model-0000{i}-of-00002.safetensors").write_bytes(b"x")
    assert missing_base_files(folder) == []
    (folder / "model-00002-of-00002.safetensors").unlink()
    assert missing_base_files(folder) == ["1 weight file(s) of 2 (model-00002-of-00002.safetensors)"]


def test_a_slack_outage_is_not_blamed_on_the_token(tmp_path: Path) -> None:
    with FakeSlack(token="xoxb-right") as slack, FakeZendesk() as zendesk:
        slack.channels["C0DRAFTS"] = True
        slack.fail_next("auth.test", 500, times=20)  # more than the client's own retries
        models = '[[models]]\nname = "m"\nbase_model = "/nowhere"\n'
        checks = {c.name: c for c in run_checks(config(tmp_path, slack, zendesk, models), ENV)}
    token = checks["Slack bot token"]
    assert token.status == FAIL and "Slack's side, not the token" in token.detail
    assert "SLACK_BOT_TOKEN" not in token.detail

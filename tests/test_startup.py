"""Start-up failures end in one clear StartupError, before any model is loaded."""

import pytest

from bot.app import build
from bot.config import parse_settings
from bot.errors import StartupError
from integrations.standins.slack_server import FakeSlack

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-wrong",
    "SLACK_SIGNING_SECRET": "s",
    "ZENDESK_EMAIL": "a@example.com",
    "ZENDESK_API_TOKEN": "t",
    "ZENDESK_WEBHOOK_SECRET": "w",
}


class NeverLoaded:
    """Stands where the model runtime goes: these start-ups must fail before touching it."""

    def __getattr__(self, name):
        raise AssertionError(f"the backend was used ({name}) although start-up should have failed")


def settings(tmp_path, slack):
    raw = {
        "slack": {"channel": "C1", "mode": "http", "api_url": slack.api_url},
        "server": {"host": "127.0.0.1", "port": 0},
        "zendesk": {"url": "http://127.0.0.1:9"},
        "storage": {"path": str(tmp_path / "store.json")},
        "models": [{"name": "m", "base_model": "/nowhere"}],
    }
    return parse_settings(raw, SECRETS)


def test_a_rejected_bot_token_stops_start_up(tmp_path):
    with (
        FakeSlack(token="xoxb-right") as slack,
        pytest.raises(StartupError, match=r"SLACK_BOT_TOKEN.*invalid_auth"),
    ):
        build(settings(tmp_path, slack), NeverLoaded())


def test_a_corrupt_store_stops_start_up_and_is_kept(tmp_path):
    (tmp_path / "store.json").write_text('{"jobs": {"1": ')
    with FakeSlack() as slack, pytest.raises(StartupError, match=r"not valid JSON.*backup"):
        build(settings(tmp_path, slack), NeverLoaded())
    assert (tmp_path / "store.json").read_text() == '{"jobs": {"1": '  # nothing overwritten


def test_missing_model_files_stop_start_up(tmp_path):
    with (
        FakeSlack() as slack,
        pytest.raises(StartupError, match=r"draft models could not be loaded.*'m'"),
    ):
        build(settings(tmp_path, slack))

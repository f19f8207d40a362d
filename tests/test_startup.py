"""Start-up failures end in one clear StartupError, before any model is loaded."""

import pytest

from bot.config import parse_settings
from bot.errors import StartupError
from draftdesk.app import build
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import DEFAULT_AGENT_ID, FakeZendesk

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


def settings(tmp_path, slack, zendesk_url="http://127.0.0.1:9"):
    raw = {
        "slack": {"channel": "C1", "mode": "http", "api_url": slack.api_url},
        "server": {"host": "127.0.0.1", "port": 0},
        "zendesk": {"url": zendesk_url},
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


def test_a_rejected_zendesk_token_stops_start_up(tmp_path):
    with (
        FakeSlack() as slack,
        FakeZendesk(credentials=(SECRETS["ZENDESK_EMAIL"], "the-real-token")) as zendesk,
        pytest.raises(StartupError, match=r"Zendesk refused the API user.*401.*ZENDESK_API_TOKEN"),
    ):
        build(settings(tmp_path, slack, zendesk.url), NeverLoaded())


def test_an_end_user_cannot_be_the_zendesk_api_user(tmp_path):
    with (
        FakeSlack() as slack,
        FakeZendesk() as zendesk,
        pytest.raises(StartupError, match=r"a@example.com is an end-user: drafts need an agent or admin"),
    ):
        zendesk.add_user(DEFAULT_AGENT_ID, "Customer", "a@example.com", role="end-user")
        build(settings(tmp_path, slack, zendesk.url), NeverLoaded())


def test_an_unreachable_zendesk_only_warns(tmp_path, caplog):
    # Nothing listens on port 9: start-up goes on to the models (and fails there, on /nowhere).
    with FakeSlack() as slack, pytest.raises(StartupError, match=r"draft models could not be loaded"):
        build(settings(tmp_path, slack))
    assert "could not check the Zendesk API user, starting anyway" in caplog.text


class AnonymousZendesk:
    """users/me as Zendesk answers a request it did not authenticate: an anonymous end user."""

    base_url = "https://acme.zendesk.com"

    def api_user(self):
        from integrations.zendesk import ZendeskUser

        return ZendeskUser(id=0, name="Anonymous user", email="", role="end-user")


def test_an_anonymous_zendesk_answer_stops_start_up():
    from draftdesk.app import check_zendesk_api_user

    with pytest.raises(StartupError, match=r"anonymous user.*token access is enabled"):
        check_zendesk_api_user(AnonymousZendesk())


def test_a_second_bot_on_the_same_store_is_refused(tmp_path):
    from bot.store.partitioned import PartitionedStore

    first = PartitionedStore(tmp_path / "store.json")  # the running bot's store
    try:
        with FakeSlack() as slack, pytest.raises(StartupError, match=r"open for writing.*already running"):
            build(settings(tmp_path, slack), NeverLoaded())
    finally:
        first.close()

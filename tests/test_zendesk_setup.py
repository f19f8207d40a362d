"""`draftdesk zendesk setup` and `test-webhook` against the Zendesk stand-in and a running webhook server.

requests talks HTTP to the stand-in's webhooks and triggers endpoints (Zendesk's documented shapes);
setup is idempotent (a second run changes nothing) and repairs a webhook whose endpoint changed.
"""

from __future__ import annotations

import json

import pytest

from bot.drafting.intake import handle_zendesk_webhook
from bot.store.memory import MemoryStore
from draftdesk.cli import main
from integrations.standins.zendesk_server import FakeZendesk
from integrations.zendesk_setup import (
    CUSTOMER_REPLIED,
    NEW_TICKET,
    TRIGGER_BODY,
    ZendeskAdmin,
    ZendeskSetupError,
    send_test_delivery,
    set_up,
)

EMAIL, TOKEN = "admin@example.com", "tok"


def admin(zendesk: FakeZendesk) -> ZendeskAdmin:
    return ZendeskAdmin(zendesk.url, EMAIL, TOKEN)


def test_setup_creates_the_webhook_and_triggers_then_changes_nothing() -> None:
    with FakeZendesk(credentials=(EMAIL, TOKEN)) as zendesk:
        first = set_up(admin(zendesk), "https://bot.example.com/")
        assert [(s.kind, s.action) for s in first] == [
            ("webhook", "created"),
            ("trigger", "created"),
            ("trigger", "created"),
        ]
        (webhook,) = zendesk.admin.webhooks.values()
        assert webhook["endpoint"] == "https://bot.example.com/zendesk/webhook"
        assert webhook["request_format"] == "json" and webhook["http_method"] == "POST"
        titles = {t["title"]: t for t in zendesk.admin.triggers.values()}
        assert set(titles) == {NEW_TICKET, CUSTOMER_REPLIED}
        assert titles[NEW_TICKET]["conditions"]["all"] == [
            {"field": "update_type", "operator": "is", "value": "Create"}
        ]
        replied = titles[CUSTOMER_REPLIED]["conditions"]["all"]
        assert {"field": "role", "operator": "is", "value": "end_user"} in replied
        assert {"field": "comment_is_public", "operator": "is", "value": "true"} in replied
        for trigger in titles.values():
            assert trigger["actions"] == [
                {"field": "notification_webhook", "value": [webhook["id"], TRIGGER_BODY]}
            ]

        again = set_up(admin(zendesk), "https://bot.example.com")
        assert [s.action for s in again] == ["unchanged"] * 3
        assert len(zendesk.admin.webhooks) == 1 and len(zendesk.admin.triggers) == 2
        assert not zendesk.requests_to("POST", "/api/v2/webhooks")[1:]


def test_setup_moves_the_webhook_to_a_new_address_and_dry_run_changes_nothing() -> None:
    with FakeZendesk(credentials=(EMAIL, TOKEN)) as zendesk:
        set_up(admin(zendesk), "https://old.example.com")
        planned = set_up(admin(zendesk), "https://new.example.com", dry_run=True)
        assert [s.action for s in planned] == ["would update", "unchanged", "unchanged"]
        (webhook,) = zendesk.admin.webhooks.values()
        assert webhook["endpoint"] == "https://old.example.com/zendesk/webhook"
        done = set_up(admin(zendesk), "https://new.example.com")
        assert [s.action for s in done] == ["updated", "unchanged", "unchanged"]
        assert webhook["endpoint"] == "https://new.example.com/zendesk/webhook"


def test_a_rejected_token_is_one_clear_error() -> None:
    with (
        FakeZendesk(credentials=(EMAIL, "right")) as zendesk,
        pytest.raises(ZendeskSetupError, match=r"401.*admin"),
    ):
        set_up(ZendeskAdmin(zendesk.url, EMAIL, "wrong"), "https://bot.example.com")


def test_the_cli_prints_each_step_and_where_the_secret_is(tmp_path, monkeypatch, capsys) -> None:
    with FakeZendesk(credentials=(EMAIL, TOKEN)) as zendesk:
        config = tmp_path / "config.toml"
        config.write_text(f'[zendesk]\nurl = "{zendesk.url}"\n')
        monkeypatch.setenv("ZENDESK_EMAIL", EMAIL)
        monkeypatch.setenv("ZENDESK_API_TOKEN", TOKEN)
        code = main(["zendesk", "setup", "--config", str(config), "--public-url", "https://bot.example.com"])
        out = capsys.readouterr().out
        assert code == 0
        assert "webhook 'draftdesk': created" in out and f"trigger '{NEW_TICKET}': created" in out
        assert "ZENDESK_WEBHOOK_SECRET" in out and "Reveal secret" in out
        assert all(secret not in out for secret in zendesk.admin.secrets.values())


@pytest.fixture
def webhook_server():
    """The bot's webhook handler behind a real HTTP server (waitress via bot/operations/web.py is tested
    elsewhere)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    store = MemoryStore()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # type: ignore[no-untyped-def]
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer = handle_zendesk_webhook(body, dict(self.headers.items()), "bot-secret", store)
            data = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # type: ignore[no-untyped-def]
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/zendesk/webhook", store
    server.shutdown()
    server.server_close()


def test_test_webhook_reports_a_right_and_a_wrong_secret(webhook_server) -> None:
    url, store = webhook_server
    assert send_test_delivery(url, "bot-secret")[0] == 200
    assert store.jobs() == []  # the ping drafts nothing
    assert send_test_delivery(url, "another-secret")[0] == 401
    status, answer = send_test_delivery(url, "bot-secret", ticket_id=42)
    assert status == 200 and "42" in answer and [job.ticket_id for job in store.jobs()] == [42]


def test_test_webhook_cli_says_what_happened(webhook_server, monkeypatch, capsys) -> None:
    url, _store = webhook_server
    monkeypatch.setenv("ZENDESK_WEBHOOK_SECRET", "wrong")
    assert main(["zendesk", "test-webhook", "--url", url]) == 1
    assert "refused the signature" in capsys.readouterr().out
    assert (
        main(["zendesk", "test-webhook", "--url", "http://127.0.0.1:9/zendesk/webhook"]) == 2
    )  # discard port
    assert "nothing answered" in capsys.readouterr().err

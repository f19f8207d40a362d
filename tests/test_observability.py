"""GET /metrics and GET /healthz of a running bot: real Bolt, slack_sdk and zenpy against the stand-ins."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bot.config import load_settings
from core.domain import DraftResult
from draftdesk.app import build
from integrations.standins.slack_requests import block_action_body, signed_headers
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import FakeZendesk
from integrations.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.waiting import drafts_posted, wait_until

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-observed",
    "SLACK_SIGNING_SECRET": "slack-signing-secret",
    "ZENDESK_EMAIL": "agent@example.com",
    "ZENDESK_API_TOKEN": "zendesk-token",
    "ZENDESK_WEBHOOK_SECRET": "zendesk-webhook-secret",
}
CHANNEL = "CDRAFTS"
MODELS = ("alpha", "beta", "gamma")


class WordsBackend:
    """Three short drafts per ticket, five tokens each: the metrics' numbers are known in advance."""

    def count_tokens(self, model_name: str, text: str) -> int:
        return len(text.split())

    def context_limit(self, model_name: str) -> int:
        return 4096

    def generate(self, prompts):
        return self.generate_many([prompts])[0]

    def generate_many(self, batch):
        return [
            [DraftResult(m, f"Draft reply from {m} here", completion_tokens=5) for m in prompts]
            for prompts in batch
        ]


def write_config(tmp_path: Path, slack: FakeSlack, zendesk: FakeZendesk) -> Path:
    models = "".join(f'[[models]]\nname = "{m}"\nbase_model = "/unused"\n' for m in MODELS)
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[slack]
mode = "http"
channel = "{CHANNEL}"
api_url = "{slack.api_url}"
[server]
host = "127.0.0.1"
port = 0
[health]
check_interval_seconds = 1
check_timeout_seconds = 5
[zendesk]
url = "{zendesk.url}"
[worker]
retry_base_seconds = 0.1
max_attempts = 1
[storage]
path = "store.json"
{models}"""
    )
    return path


@pytest.fixture
def running(tmp_path):
    with FakeSlack() as slack, FakeZendesk() as zendesk:
        zendesk.add_user(100, "Maria Schmidt", "maria@example.com")
        zendesk.add_ticket(7, "Backup stuck", 100, comments=[(100, "My backup is stuck at 99%.", True)])
        app = build(load_settings(write_config(tmp_path, slack, zendesk), env=SECRETS), WordsBackend())
        app.start()
        try:
            yield app, slack, zendesk, f"http://127.0.0.1:{app.web.port}"
        finally:
            app.stop()


def webhook(base: str, body: bytes) -> requests.Response:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    headers = {
        SIGNATURE_HEADER: sign(SECRETS["ZENDESK_WEBHOOK_SECRET"], body, stamp),
        TIMESTAMP_HEADER: stamp,
    }
    return requests.post(f"{base}/zendesk/webhook", data=body, headers=headers, timeout=10)


def scrape(base: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}, read by prometheus_client's parser."""
    response = requests.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_tickets_drafts_posts_votes_failures_and_upstream_errors(running):
    app, slack, zendesk, base = running
    assert webhook(base, b'{"ticket_id": "7"}').status_code == 200
    wait_until(lambda: drafts_posted(app.store, 7), timeout=30, what="ticket 7 drafted")
    assert webhook(base, b'{"ticket_id": "404"}').status_code == 200  # no such ticket in Zendesk
    wait_until(lambda: app.store.jobs("failed"), timeout=30, what="ticket 404 failed")

    channel, parent_ts = app.store.ticket_thread(7)
    draft = app.store.drafts_for_ticket(7)[0]
    click = block_action_body("UAGENT1", channel, draft.vote_ts, parent_ts, "rate_4", draft.id)
    headers = signed_headers(SECRETS["SLACK_SIGNING_SECRET"], click, "application/x-www-form-urlencoded")
    requests.post(f"{base}/slack/events", data=click.encode(), headers=headers, timeout=10)
    wait_until(lambda: app.store.votes(), timeout=10, what="the vote stored")

    m = scrape(base)
    assert m[("draftdesk_tickets_queued_total", (("source", "webhook"),))] == 2
    for model in MODELS:
        assert m[("draftdesk_drafts_total", (("model", model), ("outcome", "ok")))] == 1
        assert m[("draftdesk_generated_tokens_total", (("model", model),))] == 5
    assert m[("draftdesk_tickets_posted_total", ())] == 1
    assert m[("draftdesk_jobs_failed_total", ())] == 1
    assert m[("draftdesk_draft_seconds_count", ())] == 1
    assert m[("draftdesk_tokens_per_second", ())] > 0
    assert m[("draftdesk_votes_total", (("source", "button"),))] == 1
    assert m[("draftdesk_upstream_errors_total", (("service", "zendesk"), ("status", "404")))] == 1
    assert m[("draftdesk_jobs", (("status", "failed"),))] == 1
    assert m[("draftdesk_jobs", (("status", "queued"),))] == 0
    assert m[("draftdesk_worker_heartbeat_age_seconds", ())] < 30
    assert not [name for name, _ in m if name.endswith("_created")]  # one series per counter, not two


def test_slack_errors_are_counted_by_their_code(running):
    app, slack, zendesk, base = running
    slack.error_next("chat.postMessage", "channel_not_found")
    assert webhook(base, b'{"ticket_id": "7"}').status_code == 200
    wait_until(lambda: app.store.jobs("failed"), timeout=30, what="the job failed")
    m = scrape(base)
    assert (
        m[("draftdesk_upstream_errors_total", (("service", "slack"), ("status", "channel_not_found")))] == 1
    )


def test_healthz_reports_every_part_and_answers_503_when_zendesk_goes_away(running):
    app, slack, zendesk, base = running
    response = requests.get(f"{base}/healthz", timeout=10)
    report = response.json()
    assert response.status_code == 200 and report["ok"] is True and report["problems"] == []
    assert set(report["checks"]) == {"slack", "zendesk", "models", "worker", "queue"}
    assert "agent@example.com" in report["checks"]["zendesk"]["detail"]
    assert report["checks"]["worker"]["heartbeat_age_seconds"] < 30
    assert report["checks"]["queue"]["oldest_queued_age_seconds"] is None

    zendesk.close()  # Zendesk is gone: after the check interval (1 s) the next check sees it

    def degraded() -> bool:
        return requests.get(f"{base}/healthz", timeout=10).status_code == 503

    wait_until(degraded, timeout=30, what="/healthz degraded")
    report = requests.get(f"{base}/healthz", timeout=10).json()
    assert report["ok"] is False and report["checks"]["zendesk"]["ok"] is False
    assert [p for p in report["problems"] if p.startswith("zendesk: ")], report["problems"]
    assert report["checks"]["slack"]["ok"] is True

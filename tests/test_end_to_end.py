"""The whole loop over HTTP: signed Zendesk webhook → three drafts in a Slack thread (real NF4 +
LoRA tiny models) → signed button click and reaction → votes export and JSON report."""

import csv
import io
import json
import time
from contextlib import redirect_stdout

import pytest
import requests

from bot.config import load_settings
from bot.reporting.model_versions import version_label
from draftdesk.app import build
from draftdesk.cli import main
from integrations.standins.slack_requests import (
    block_action_body,
    event_body,
    reaction_event,
    signed_headers,
    view_submission_body,
)
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import FakeZendesk
from integrations.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests import waiting
from tests.waiting import drafts_posted

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-e2e",
    "SLACK_SIGNING_SECRET": "slack-signing-secret",
    "ZENDESK_EMAIL": "agent@example.com",
    "ZENDESK_API_TOKEN": "zendesk-token",
    "ZENDESK_WEBHOOK_SECRET": "zendesk-webhook-secret",
}
CHANNEL = "CDRAFTS"


def write_config(tmp_path, slack, zendesk, models) -> str:
    path = tmp_path / "config.toml"
    model_tables = "".join(
        f"""
[[models]]
name = "{name}"
base_model = "{models[base]}"
{f'adapter = "{models[adapter]}"' if adapter else ""}
max_new_tokens = 12
temperature = 0
"""
        for name, base, adapter in [
            ("llama-ft", "llama_base", "llama_adapter"),
            ("gptj-ft", "gptj_base", "gptj_adapter"),
            ("llama", "llama_base", None),
        ]
    )
    path.write_text(
        f"""
[slack]
mode = "http"
channel = "{CHANNEL}"
api_url = "{slack.api_url}"
[server]
host = "127.0.0.1"
port = 0
[zendesk]
url = "{zendesk.url}"
[intake]
mode = "webhook"
[worker]
retry_base_seconds = 0.1
[storage]
path = "store.json"
{model_tables}"""
    )
    return str(path)


@pytest.fixture
def running(tmp_path, demo_models):
    with FakeSlack() as slack, FakeZendesk() as zendesk:
        zendesk.add_user(100, "Maria Schmidt", "maria@example.com")
        zendesk.add_ticket(
            7, "Backup stuck <!channel>", 100, comments=[(100, "My backup is stuck at 99%. Help?", True)]
        )
        config = write_config(tmp_path, slack, zendesk, demo_models)
        app = build(load_settings(__import__("pathlib").Path(config), env=SECRETS))
        app.start()
        try:
            yield app, slack, zendesk, config, f"http://127.0.0.1:{app.web.port}"
        finally:
            app.stop()


def webhook(base, body: bytes, secret=SECRETS["ZENDESK_WEBHOOK_SECRET"]):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    headers = {SIGNATURE_HEADER: sign(secret, body, stamp), TIMESTAMP_HEADER: stamp}
    return requests.post(f"{base}/zendesk/webhook", data=body, headers=headers, timeout=10)


def slack_post(base, body: str, content_type: str, secret=SECRETS["SLACK_SIGNING_SECRET"], timestamp=None):
    headers = signed_headers(secret, body, content_type, timestamp)
    return requests.post(f"{base}/slack/events", data=body.encode(), headers=headers, timeout=10)


def wait_until(condition, timeout=120.0):
    waiting.wait_until(condition, timeout)


def run_cli(*args) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(list(args)) == 0
    return out.getvalue()


def test_webhook_to_drafts_to_votes_to_report(running):
    app, slack, zendesk, config, base = running
    started = time.monotonic()
    response = webhook(base, b'{"ticket_id": "7"}')
    assert response.status_code == 200 and response.json()["queued"] == [7]
    assert time.monotonic() - started < 1.0  # queued, not processed, before answering
    wait_until(lambda: drafts_posted(app.store, 7))

    channel, parent_ts = app.store.ticket_thread(7)
    thread = slack.thread(channel, parent_ts)
    assert len(thread) == 4
    assert "&lt;!channel&gt;" in str(thread[0]["blocks"]) and "Maria" in str(thread[0]["blocks"])
    drafts = app.store.drafts_for_ticket(7)
    assert sorted(d.model for d in drafts) == ["gptj-ft", "llama", "llama-ft"]
    for draft in drafts:
        assert draft.text and draft.model not in str(thread)

    # An agent clicks 4 on Draft A, another reacts :two: on Draft B, then changes their mind.
    a, b = drafts[0], drafts[1]
    click = block_action_body("UAGENT1", channel, a.vote_ts, parent_ts, "rate_4", a.id)
    assert slack_post(base, click, "application/x-www-form-urlencoded").status_code == 200
    react = event_body(reaction_event("reaction_added", "UAGENT2", "two", channel, b.vote_ts))
    assert slack_post(base, react, "application/json").status_code == 200
    wait_until(lambda: len(app.store.votes()) == 2)
    wait_until(lambda: len(slack.calls_to("chat.postEphemeral")) == 2)
    assert "Rated by 1" in str(slack.find_message(channel, a.vote_ts)["blocks"])
    click_again = block_action_body("UAGENT1", channel, a.vote_ts, parent_ts, "rate_5", a.id)
    slack_post(base, click_again, "application/x-www-form-urlencoded")
    wait_until(lambda: {v.score for v in app.store.votes() if v.rater == "UAGENT1"} == {5})
    unreact = event_body(reaction_event("reaction_removed", "UAGENT2", "two", channel, b.vote_ts))
    slack_post(base, unreact, "application/json")
    wait_until(lambda: len(app.store.votes()) == 1)
    react_c = event_body(reaction_event("reaction_added", "UAGENT2", "three", channel, drafts[2].vote_ts))
    slack_post(base, react_c, "application/json")
    wait_until(lambda: len(app.store.votes()) == 2)

    exported = list(csv.DictReader(io.StringIO(run_cli("votes", "export", "--config", config))))
    assert {(r["draft_id"], r["rater"], r["score"], r["source"], r["model"]) for r in exported} == {
        (a.id, "UAGENT1", "5", "button", a.model),
        (drafts[2].id, "UAGENT2", "3", "reaction", drafts[2].model),
    }
    assert all(r["ticket_id"] == "7" and r["voted_at"] for r in exported)
    # Each draft and vote knows the adapter version it came from, and the exact prompt.
    assert {r["draft_id"]: r["model_version"] for r in exported} == {
        d.id: d.model_version or "" for d in (a, drafts[2])
    }
    assert all(d.prompt and d.prompt.endswith("Agent:") and "\n\nCustomer: " in d.prompt for d in drafts)
    assert {d.model: bool(d.model_version) for d in drafts} == {
        "llama": False,
        "llama-ft": True,
        "gptj-ft": True,
    }
    report = json.loads(run_cli("report", "--format", "json", "--config", config))
    by_model = {m["model"]: m for m in report["models"]}  # a row per model and adapter version
    row_a, row_c = (version_label(d.model, d.model_version) for d in (a, drafts[2]))
    assert by_model[row_a]["counts"]["5"] == 1 and by_model[row_a]["positive_pct"] == 100.0
    assert by_model[row_c]["counts"]["3"] == 1
    assert by_model[b.model]["n"] == 0

    # Send Draft A to Zendesk: the modal opens with its text; submitted as it is, it becomes one
    # internal note; a second submission of the same modal is asked to confirm, and adds nothing.
    send = block_action_body("UAGENT1", channel, a.vote_ts, parent_ts, "send_to_zendesk", a.id)
    slack_post(base, send, "application/x-www-form-urlencoded")
    wait_until(lambda: slack.calls_to("views.open"))
    view = slack.calls_to("views.open")[0].response["view"]
    values = {"draft_text": {"text": {"type": "plain_text_input", "value": a.text}}}
    submission = view_submission_body("UAGENT1", view, values)
    assert slack_post(base, submission, "application/x-www-form-urlencoded").content == b""
    again = slack_post(base, submission, "application/x-www-form-urlencoded").json()  # double submit
    assert again["response_action"] == "update"
    wait_until(lambda: app.store.draft(a.id).sent_to_zendesk_by == "UAGENT1")
    notes = [c for c in zendesk.comments(7) if not c["public"]]
    assert [n["body"] for n in notes] == [
        f"{a.text.strip()}\n\n(Sent from Slack by uagent1)"
    ]  # the Slack username: no profile


def test_forged_requests_change_nothing(running):
    app, slack, zendesk, config, base = running
    body = b'{"ticket_id": "7"}'
    assert webhook(base, body, secret="not-the-secret").status_code == 401
    unsigned = requests.post(f"{base}/zendesk/webhook", data=body, timeout=10)
    assert unsigned.status_code == 401
    click = block_action_body("UEVIL", CHANNEL, "1.1", "1.0", "rate_1", "t7r1A")
    assert slack_post(base, click, "application/x-www-form-urlencoded", secret="forged").status_code == 401
    stale = int(time.time()) - 600
    assert slack_post(base, click, "application/x-www-form-urlencoded", timestamp=stale).status_code == 401
    react = event_body(reaction_event("reaction_added", "UEVIL", "one", CHANNEL, "1.1"))
    assert slack_post(base, react, "application/json", secret="forged").status_code == 401
    too_big = requests.post(f"{base}/zendesk/webhook", data=b"x" * 3_000_000, timeout=10)
    assert too_big.status_code == 413
    assert requests.get(f"{base}/healthz", timeout=5).json()["ok"] is True
    # A genuine webhook for another ticket, after the forged ones: once its drafts are posted and
    # the queue is idle, the worker has done everything the requests before it could have caused.
    zendesk.add_ticket(8, "Restore failed", 100, comments=[(100, "The restore fails at 40%.", True)])
    assert webhook(base, b'{"ticket_id": "8"}').json()["queued"] == [8]
    wait_until(lambda: drafts_posted(app.store, 8))
    assert [j.ticket_id for j in app.store.jobs()] in ([], [8])  # only the genuine job, if kept
    assert app.store.ticket_thread(7) is None and app.store.drafts_for_ticket(7) == []
    assert app.store.votes() == [] and not slack.calls_to("chat.postEphemeral")
    channel, parent_ts = app.store.ticket_thread(8)
    assert len(slack.calls_to("chat.postMessage")) == len(slack.thread(channel, parent_ts)) == 4
    assert not [r for r in zendesk.requests if "/tickets/7" in r.path]

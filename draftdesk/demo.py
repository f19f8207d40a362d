"""`draftdesk demo`: the whole loop offline, with the real code paths.

Sample tickets sit in a loopback Zendesk stand-in; the bot receives signed webhooks for them,
drafts with small local models (real NF4 4-bit + LoRA, random weights: the text is noise,
the machinery is real), posts to a loopback Slack stand-in, receives signed button clicks and
emoji reactions from three pretend agents, and prints each thread, the report and the digest.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import sys
import time
from importlib import resources
from pathlib import Path

import requests

from bot.blocks import message_lines
from bot.comparisons import analyse, choose_baseline
from bot.config import load_settings
from bot.digest import PERIOD
from bot.report import render_text
from bot.stats import model_stats
from core.domain import JOB_QUEUED, JOB_RUNNING, utcnow
from integrations.standins.slack_requests import (
    block_action_body,
    event_body,
    reaction_event,
    signed_headers,
)
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import FakeZendesk
from integrations.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

CHANNEL = "C0DEMODRAFTS"
AGENTS = ("U0AGENT1", "U0AGENT2", "U0AGENT3")


def load_sample() -> dict:
    return json.loads(resources.files("bot").joinpath("sample_data/sample_tickets.json").read_text("utf-8"))


def seed_zendesk(zendesk: FakeZendesk, sample: dict) -> list[int]:
    for person in [*sample["agents"], *sample["users"]]:
        zendesk.add_user(person["id"], person["name"], person["email"], role=person.get("role", "end-user"))
    for ticket in sample["tickets"]:
        zendesk.add_ticket(
            ticket["id"],
            ticket["subject"],
            ticket["requester_id"],
            comments=[tuple(c) for c in ticket["comments"]],
        )
    return [t["id"] for t in sample["tickets"]]


def demo_config(workdir: Path, slack_url: str, zendesk_url: str, models: dict[str, Path]) -> Path:
    path = workdir / "config.toml"
    path.write_text(
        f"""# Written by `draftdesk demo`: loopback stand-ins and small local models.
[slack]
mode = "http"
channel = "{CHANNEL}"
api_url = "{slack_url}"

[server]
host = "127.0.0.1"
port = 0

[zendesk]
url = "{zendesk_url}"

[intake]
mode = "webhook"

[worker]
retry_base_seconds = 1
product_name = "Acme Cloud Backup"

[digest]
channel = "{CHANNEL}"
users = ["U0TEAMLEAD"]

[storage]
path = "store.json"

[[models]]
name = "llama-tiny-ft"
base_model = "{models["llama_base"]}"
adapter = "{models["llama_adapter"]}"
max_new_tokens = 40
temperature = 0.8
seed = 1

[[models]]
name = "gptj-tiny-ft"
base_model = "{models["gptj_base"]}"
adapter = "{models["gptj_adapter"]}"
max_new_tokens = 40
temperature = 0.8
seed = 2

[[models]]
name = "llama-tiny"
base_model = "{models["llama_base"]}"
max_new_tokens = 40
temperature = 0.8
seed = 3
""",
        encoding="utf-8",
    )
    return path


def print_thread(slack: FakeSlack, channel: str, parent_ts: str, out=sys.stdout) -> None:
    messages = slack.thread(channel, parent_ts)
    width = 78
    print("┌" + "─" * width, file=out)
    for index, message in enumerate(messages):
        prefix = "│ " if index == 0 else "│   ↳ "
        for line in message_lines(message):
            print(prefix + line, file=out)
            prefix = "│ " if index == 0 else "│     "
    print("└" + "─" * width, file=out)


def run_demo(workdir: Path) -> int:
    from draftdesk.app import build
    from models.tiny import build_demo_models

    workdir.mkdir(parents=True, exist_ok=True)
    store_file = workdir / "store.json"
    store_file.unlink(missing_ok=True)  # each demo run starts clean
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print("draftdesk demo: building small local models (NF4 4-bit + LoRA, random weights)…", flush=True)
    models = build_demo_models(workdir / "models")

    demo_secrets = {
        "SLACK_BOT_TOKEN": "xoxb-demo-" + secrets.token_hex(8),
        "SLACK_SIGNING_SECRET": secrets.token_hex(16),
        "ZENDESK_EMAIL": "demo@acme-backup.example",
        "ZENDESK_API_TOKEN": secrets.token_hex(16),
        "ZENDESK_WEBHOOK_SECRET": secrets.token_hex(16),
    }
    with FakeSlack() as slack, FakeZendesk() as zendesk:
        sample = load_sample()
        ticket_ids = seed_zendesk(zendesk, sample)
        config = demo_config(workdir, slack.api_url, zendesk.url, models)
        settings = load_settings(config, env={**os.environ, **demo_secrets})
        print("loading models…", flush=True)
        app = build(settings)
        app.start()
        assert app.web is not None
        base = f"http://127.0.0.1:{app.web.port}"
        try:
            for ticket_id in ticket_ids:
                body = json.dumps({"ticket_id": str(ticket_id)}).encode()
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                response = requests.post(
                    f"{base}/zendesk/webhook",
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        SIGNATURE_HEADER: sign(demo_secrets["ZENDESK_WEBHOOK_SECRET"], body, stamp),
                        TIMESTAMP_HEADER: stamp,
                    },
                    timeout=10,
                )
                print(
                    f"webhook for ticket #{ticket_id}: HTTP {response.status_code} {response.text}",
                    flush=True,
                )
            _wait_for_jobs(app, timeout=600)
            cast = _pretend_agents_vote(app, base, demo_secrets["SLACK_SIGNING_SECRET"], ticket_ids)
            _wait_for_votes(app, cast, timeout=30)
            print("\nSlack threads as posted:\n")
            for ticket_id in ticket_ids:
                thread = app.store.ticket_thread(ticket_id)
                if thread:
                    print_thread(slack, *thread)
            print("\nReport (draftdesk report):\n")
            names = [m.name for m in settings.models]
            untuned = [m.name for m in settings.models if not m.adapter]
            votes = app.store.votes()
            analysis = analyse(votes, names, choose_baseline(names, untuned, None), utcnow())
            print(render_text(model_stats(votes, names), None, None, analysis))
            app.digest.post_for(utcnow())
            digest_msg = slack.messages[CHANNEL][-1]
            print("Weekly digest as posted to Slack:\n")
            print("\n".join(message_lines(digest_msg)))
            since = utcnow() - PERIOD
            print(f"\n(period {since:%Y-%m-%d} to now; the team lead also got it as a DM)")
            if slack.files:
                chart = workdir / "digest-chart.png"
                chart.write_bytes(next(iter(slack.files.values()))["data"])
                print(f"The digest's chart, as uploaded to Slack: {chart.resolve()}")
            print(f"\nStore: {store_file}  Config: {config}")
            print(f"Try: draftdesk report --config {config} --format markdown")
        finally:
            app.stop()
    return 0


def _wait_for_jobs(app, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not app.store.jobs(JOB_QUEUED) and not app.store.jobs(JOB_RUNNING):
            return
        time.sleep(0.2)
    raise TimeoutError("the demo's jobs did not finish in time")


def _pretend_agents_vote(app, base: str, signing_secret: str, ticket_ids: list[int]) -> int:
    """Three pretend agents rate every draft (buttons or reactions); returns the votes cast."""
    rng = random.Random(7)
    cast = 0
    for ticket_id in ticket_ids:
        thread = app.store.ticket_thread(ticket_id)
        if not thread:
            continue
        channel, parent_ts = thread
        for draft in app.store.drafts_for_ticket(ticket_id):
            if not draft.vote_ts:
                continue
            for agent in AGENTS:
                score = rng.randint(1, 5)
                if rng.random() < 0.5:
                    body = block_action_body(
                        agent, channel, draft.vote_ts, parent_ts, f"rate_{score}", draft.id
                    )
                    headers = signed_headers(signing_secret, body, "application/x-www-form-urlencoded")
                else:
                    names = ["one", "two", "three", "four", "five"]
                    body = event_body(
                        reaction_event("reaction_added", agent, names[score - 1], channel, draft.vote_ts)
                    )
                    headers = signed_headers(signing_secret, body, "application/json")
                requests.post(f"{base}/slack/events", data=body.encode(), headers=headers, timeout=10)
                cast += 1
    return cast


def _wait_for_votes(app, expected: int, timeout: float) -> None:
    """Bolt runs the listeners after the ack: wait until every vote is stored (or the timeout)."""
    deadline = time.monotonic() + timeout
    while len(app.store.votes()) < expected and time.monotonic() < deadline:
        time.sleep(0.05)

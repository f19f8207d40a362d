"""`draftdesk demo`: the study in miniature, offline, through the real code paths.

Small models learn the bundled sample product (draftdesk/demo/models.py: two bases pretrained on its
help-centre articles and everyday support e-mails, one QLoRA adapter each tuned by the real
`draftdesk finetune train` on its question-answer pairs; cached after the first run). The sample's
held-out tickets and its Help Center sit in a loopback Zendesk stand-in; the bot receives signed
webhooks for them, drafts with the two fine-tuned models and the untuned base (NF4 4-bit + LoRA),
each prompt holding the Help Center passage that fits the ticket (`[grounding]`, as the adapters were
trained), posts to a loopback Slack stand-in, and three simulated raters (draftdesk/demo/raters.py)
vote with signed button clicks and reactions, scoring each draft by its similarity to the agent's
real answer. Then it prints each thread, the report with the paired comparison, and the weekly
digest with its chart.
"""

from __future__ import annotations

import html
import json
import logging
import os
import random
import secrets
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import requests

from bot.config import load_settings
from bot.reporting.outcomes import outcome_stats
from bot.reporting.period_report import period_report
from bot.reporting.report import render_text
from bot.slack.blocks import message_lines
from bot.slack.digest import PERIOD
from core.domain import JOB_QUEUED, JOB_RUNNING, utcnow
from draftdesk.demo.models import (
    FULL,
    GROUNDING_LOCALES,
    DemoModels,
    Recipe,
    ensure_demo_models,
    model_name,
)
from draftdesk.demo.raters import LABEL, RATERS, score, similarity
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
BASELINE = "mini-llama"
DIGEST_NOTE = "Demo: these ratings come from " + LABEL + "."
HELP_CENTER_FILE = "helpcenter.json"


@dataclass(frozen=True)
class DemoTicket:
    id: int
    subject: str
    requester_id: int
    question: str  # the customer's first message, as they wrote it
    answer: str  # the agent's real answer, as `finetune prepare` cleaned it (held out from training)


def held_out_tickets(dataset: Path) -> list[DemoTicket]:
    """The tickets `prepare` put in the eval split: no model was trained on them."""
    from finetune.sample import load_sample

    sample = load_sample()
    tickets = {t["id"]: t for t in sample.tickets}
    result = []
    for line in (dataset / "eval.jsonl").read_text("utf-8").splitlines():
        row = json.loads(line)
        ticket = tickets[row["ticket_id"]]
        first = next(c for c in sample.comments[ticket["id"]] if c["public"])
        result.append(
            DemoTicket(
                ticket["id"], ticket["subject"], ticket["requester_id"], first["body"], row["completion"]
            )
        )
    return result


def seed_zendesk(zendesk: FakeZendesk, tickets: list[DemoTicket]) -> None:
    from finetune.sample import load_sample, seed_users_and_articles

    seed_users_and_articles(zendesk, load_sample())
    for ticket in tickets:
        zendesk.add_ticket(
            ticket.id,
            ticket.subject,
            ticket.requester_id,
            comments=[(ticket.requester_id, ticket.question, True)],
        )


def demo_config(
    workdir: Path, slack_url: str, zendesk_url: str, models: DemoModels, recipe: Recipe = FULL
) -> Path:
    """The bot's config: every model grounded alike (the study's three got the same prompts)."""
    path = workdir / "config.toml"
    entries = [
        (model_name("llama"), models.bases["llama"], models.adapters["llama"], 1),
        (model_name("gptj"), models.bases["gptj"], models.adapters["gptj"], 2),
        (BASELINE, models.bases["llama"], None, 3),
    ]
    tables = "".join(
        f"""
[[models]]
name = "{name}"
base_model = "{base}"
{f'adapter = "{adapter}"' if adapter else "# no adapter: the untuned base, the study's baseline"}
grounding = true
max_new_tokens = 80
temperature = 0
repetition_penalty = 1.0
seed = {seed}
"""
        for name, base, adapter, seed in entries
    )
    path.write_text(
        f"""# Written by `draftdesk demo`: loopback stand-ins and the demo's small local models.
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
baseline = "{BASELINE}"

[grounding]
enabled = true
locales = {json.dumps(list(GROUNDING_LOCALES))}
prompt_tokens = {recipe.prompt_tokens}
path = "{HELP_CENTER_FILE}"

[storage]
path = "store.json"
{tables}""",
        encoding="utf-8",
    )
    return path


def print_thread(slack: FakeSlack, channel: str, parent_ts: str, out=sys.stdout) -> None:
    """The thread as Slack shows it (its text unescaped: Slack renders &lt; as <)."""
    width = 78
    print("┌" + "─" * width, file=out)
    for index, message in enumerate(slack.thread(channel, parent_ts)):
        prefix = "│ " if index == 0 else "│   ↳ "
        for line in message_lines(message):
            print(prefix + html.unescape(line), file=out)
            prefix = "│ " if index == 0 else "│     "


def print_ratings(ticket: DemoTicket, ratings: dict[str, tuple[float, list[int]]], out=sys.stdout) -> None:
    """Under a thread: the real answer and what the simulated raters gave each draft."""
    print("│ " + "┄" * 76, file=out)
    print(
        "│ The agent's real answer (held out from training; the simulated raters compare with it):", file=out
    )
    for line in ticket.answer.strip().splitlines():
        if line.strip():
            print("│   " + line[:160], file=out)
    for label, (chrf, scores) in sorted(ratings.items()):
        print(f"│ SIMULATED raters, Draft {label}: chrF {chrf:4.1f} → scores {scores}", file=out)
    print("└" + "─" * 78, file=out)


def run_demo(workdir: Path, cache: Path, recipe: Recipe = FULL) -> int:
    from draftdesk.app import build

    _quiet_libraries()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    store_file = workdir / "store.json"
    store_file.unlink(missing_ok=True)  # each demo run starts clean
    (workdir / HELP_CENTER_FILE).unlink(missing_ok=True)
    for history in workdir.glob("store.json.*"):  # the store's history folder, from an earlier run
        if history.is_dir():
            shutil.rmtree(history)
    print(
        "draftdesk demo: the study in miniature, offline (Acme Cloud Backup, a fictional product)\n",
        flush=True,
    )
    models = ensure_demo_models(cache, recipe, say=lambda line: print(line, flush=True))
    tickets = held_out_tickets(models.dataset)
    by_id = {t.id: t for t in tickets}
    print(
        f"\n{len(tickets)} tickets the models never saw (the sample's held-out split) go to the bot; "
        f"each gets drafts from {model_name('llama')} and {model_name('gptj')} (fine-tuned) and "
        f"{BASELINE} (the untuned base), in a shuffled order; every prompt holds the Help Center "
        "passage that fits the ticket.\n",
        flush=True,
    )
    demo_secrets = {
        "SLACK_BOT_TOKEN": "xoxb-demo-" + secrets.token_hex(8),
        "SLACK_SIGNING_SECRET": secrets.token_hex(16),
        "ZENDESK_EMAIL": "demo@acme-backup.example",
        "ZENDESK_API_TOKEN": secrets.token_hex(16),
        "ZENDESK_WEBHOOK_SECRET": secrets.token_hex(16),
    }
    with FakeSlack() as slack, FakeZendesk() as zendesk:
        seed_zendesk(zendesk, tickets)
        config = demo_config(workdir, slack.api_url, zendesk.url, models, recipe)
        settings = load_settings(config, env={**os.environ, **demo_secrets})
        app = build(settings)
        app.refresh_help_center()  # before the first webhook, so that every prompt has its passage
        app.start()
        assert app.web is not None
        base = f"http://127.0.0.1:{app.web.port}"
        try:
            for ticket in tickets:
                _send_webhook(base, ticket.id, demo_secrets["ZENDESK_WEBHOOK_SECRET"])
            print(f"sent {len(tickets)} signed Zendesk webhooks; drafting…", flush=True)
            _wait_for_jobs(app, timeout=600)
            ratings, cast = _simulated_raters_vote(app, base, demo_secrets["SLACK_SIGNING_SECRET"], by_id)
            _wait_for_votes(app, cast, timeout=60)
            print(f"\nSlack threads as posted, each with the {LABEL}:\n")
            for ticket in tickets:
                thread = app.store.ticket_thread(ticket.id)
                if thread:
                    print_thread(slack, *thread)
                    print_ratings(ticket, ratings.get(ticket.id, {}))
            print(f"\nReport (draftdesk report), from the {LABEL}:\n")
            names = [m.name for m in settings.models]
            untuned = [m.name for m in settings.models if not m.adapter]
            sent = outcome_stats(app.store.outcomes(), names)
            print(render_text(period_report(app.store.votes(), names, untuned, utcnow(), sent)))
            app.digest.post_for(utcnow(), note=DIGEST_NOTE)
            digest_msg = slack.messages[CHANNEL][-1]
            print("Weekly digest as posted to Slack:\n")
            print("\n".join(html.unescape(line) for line in message_lines(digest_msg)))
            since = utcnow() - PERIOD
            print(f"\n(period {since:%Y-%m-%d} to now; the team lead also got it as a DM)")
            if slack.files:
                chart = workdir / "digest-chart.png"
                chart.write_bytes(next(iter(slack.files.values()))["data"])
                print(f"The digest's chart, as uploaded to Slack: {chart}")
            print(f"\nStore: {store_file}  Config: {config}")
            print(f"Try: draftdesk report --config {config} --format markdown")
        finally:
            app.stop()
    return 0


def _quiet_libraries() -> None:
    """The demo narrates itself: no progress bars, library warnings or INFO lines in between."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    root = logging.getLogger()
    if root.level < logging.WARNING:
        root.setLevel(logging.WARNING)


def _send_webhook(base: str, ticket_id: int, secret: str) -> None:
    body = json.dumps({"ticket_id": str(ticket_id)}).encode()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    response = requests.post(
        f"{base}/zendesk/webhook",
        data=body,
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body, stamp),
            TIMESTAMP_HEADER: stamp,
        },
        timeout=10,
    )
    response.raise_for_status()


def _wait_for_jobs(app, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not app.store.jobs(JOB_QUEUED) and not app.store.jobs(JOB_RUNNING):
            return
        time.sleep(0.2)
    raise TimeoutError("the demo's jobs did not finish in time")


def _simulated_raters_vote(
    app, base: str, signing_secret: str, tickets: dict[int, DemoTicket]
) -> tuple[dict[int, dict[str, tuple[float, list[int]]]], int]:
    """Each simulated rater scores every draft, by a button click or a reaction (chosen at random).

    Returns ticket → draft label → (chrF, the raters' scores), and the number of votes cast.
    """
    rng = random.Random(7)
    ratings: dict[int, dict[str, tuple[float, list[int]]]] = {}
    cast = 0
    for ticket_id, ticket in tickets.items():
        thread = app.store.ticket_thread(ticket_id)
        if not thread:
            continue
        channel, parent_ts = thread
        for draft in app.store.drafts_for_ticket(ticket_id):
            if not draft.vote_ts:
                continue
            chrf = similarity(draft.text or "", ticket.answer)
            scores = [score(rater, f"t{ticket_id}:{draft.model}", chrf) for rater in RATERS]
            ratings.setdefault(ticket_id, {})[draft.label] = (chrf, scores)
            for rater, points in zip(RATERS, scores, strict=True):
                if rng.random() < 0.5:
                    body = block_action_body(
                        rater.user, channel, draft.vote_ts, parent_ts, f"rate_{points}", draft.id
                    )
                    headers = signed_headers(signing_secret, body, "application/x-www-form-urlencoded")
                else:
                    names = ["one", "two", "three", "four", "five"]
                    body = event_body(
                        reaction_event(
                            "reaction_added", rater.user, names[points - 1], channel, draft.vote_ts
                        )
                    )
                    headers = signed_headers(signing_secret, body, "application/json")
                requests.post(f"{base}/slack/events", data=body.encode(), headers=headers, timeout=10)
                cast += 1
    return ratings, cast


def _wait_for_votes(app, expected: int, timeout: float) -> None:
    """Bolt runs the listeners after the ack: wait until every vote is stored (or the timeout)."""
    deadline = time.monotonic() + timeout
    while len(app.store.votes()) < expected and time.monotonic() < deadline:
        time.sleep(0.05)

"""A backlog through the running bot (issue 29): batches of signed webhooks until thousands of
tickets, each batch drafted and posted before the next is sent.

    python -m benchmarks.bench_http --burst 5000            # batches of 100; prints one JSON object
    python -m benchmarks.bench_http --burst 1000 --batch 50

The whole bot (``draftdesk.app.build``: waitress, Bolt, the webhook handler, the pipeline, the
partitioned store of `draftdesk run`) runs against loopback stand-ins of Slack and Zendesk
(``integrations.standins``) with models that answer at once, so what a batch costs is the bot's own
work per ticket: Zendesk reads, Slack posts and the store's writes. Per batch: the seconds from its
first webhook until every ticket of it has three drafts posted, and the Slack and Zendesk calls it
made. Goal: the last batch within ×1.5 of the first.
"""

from __future__ import annotations

import http.client
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bot.config import load_settings
from core.domain import DraftResult
from draftdesk.app import Draftdesk, build
from integrations.standins.slack_server import FakeSlack
from integrations.standins.zendesk_server import FakeZendesk
from integrations.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-bench",
    "SLACK_SIGNING_SECRET": "bench-slack-signing-secret",
    "ZENDESK_EMAIL": "agent@example.com",
    "ZENDESK_API_TOKEN": "bench-zendesk-token",
    "ZENDESK_WEBHOOK_SECRET": "bench-zendesk-webhook-secret",
}
MODELS = ("llama-ft", "gptj-ft", "llama")
CHANNEL = "CBURST"
REPLY = "Thanks for reaching out! Please restart the backup agent and try again. " * 4


class InstantModels:
    """A DraftBackend whose models answer at once: the benchmark times the bot, not the GPU."""

    def count_tokens(self, model_name: str, text: str) -> int:
        return len(text.split())

    def context_limit(self, model_name: str) -> int:
        return 4096

    def generate(self, prompts: Mapping[str, str]) -> list[DraftResult]:
        return [
            DraftResult(name, REPLY, prompt_tokens=self.count_tokens(name, p)) for name, p in prompts.items()
        ]

    def generate_many(self, batch: Sequence[Mapping[str, str]]) -> list[list[DraftResult]]:
        return [self.generate(prompts) for prompts in batch]


def _config(folder: Path, slack: FakeSlack, zendesk: FakeZendesk) -> Path:
    models = "".join(f'\n[[models]]\nname = "{name}"\nbase_model = "bench/{name}"\n' for name in MODELS)
    path = folder / "config.toml"
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
[grounding]
enabled = false
[storage]
path = "store.json"
{models}"""
    )
    return path


def _webhook(port: int, ticket_id: int) -> int:
    body = json.dumps({"ticket_id": str(ticket_id)}).encode()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(SECRETS["ZENDESK_WEBHOOK_SECRET"], body, stamp),
        TIMESTAMP_HEADER: stamp,
    }
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", "/zendesk/webhook", body, headers)
    status = connection.getresponse().status
    connection.close()
    return status


def _posted(app: Draftdesk, tickets: range) -> bool:
    """Every ticket of the batch has its three drafts posted (the last ticket's first: the worker
    takes the queue in order, so it is the last to be done)."""
    for ticket in reversed(tickets):
        drafts = app.store.drafts_for_ticket(ticket)
        if len(drafts) != len(MODELS) or not all(d.slack_ts for d in drafts):
            return False
    return True


def run_burst(total: int, batch: int, timeout_s: float = 600.0) -> dict[str, Any]:
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as folder, FakeSlack() as slack, FakeZendesk() as zendesk:
        zendesk.add_user(100, "Customer One", "customer@example.com")
        for ticket in range(1, total + 1):
            zendesk.add_ticket(
                ticket, f"Backup stuck #{ticket}", 100, comments=[(100, "My backup is stuck.", True)]
            )
        app = build(
            load_settings(_config(Path(folder), slack, zendesk), env=SECRETS), backend=InstantModels()
        )
        app.start()
        assert app.web is not None
        port = app.web.port
        batches: list[dict[str, Any]] = []
        statuses: dict[str, int] = {}
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                for first in range(1, total + 1, batch):
                    tickets = range(first, min(first + batch, total + 1))
                    slack_before, zendesk_before = len(slack.calls), len(zendesk.requests)
                    began = time.perf_counter()
                    for status in pool.map(lambda t: _webhook(port, t), tickets):
                        statuses[str(status)] = statuses.get(str(status), 0) + 1
                    deadline = began + timeout_s
                    while not _posted(app, tickets):
                        if time.perf_counter() > deadline:
                            raise TimeoutError(f"batch from ticket {first} not posted in {timeout_s} s")
                        time.sleep(0.01)
                    batches.append(
                        {
                            "after_tickets": first - 1,
                            "seconds": round(time.perf_counter() - began, 2),
                            "slack_calls": len(slack.calls) - slack_before,
                            "zendesk_calls": len(zendesk.requests) - zendesk_before,
                        }
                    )
        finally:
            app.stop()
        store = Path(folder) / "store.json.d"
        largest = max((p.stat().st_size for p in store.rglob("*.json")), default=0)
    first_s, last_s = batches[0]["seconds"], batches[-1]["seconds"]
    calls = {(b["slack_calls"], b["zendesk_calls"]) for b in batches[1:-1]}
    return {
        "tickets": total,
        "batch": batch,
        "webhook_statuses": statuses,
        "first_batch_s": first_s,
        "last_batch_s": last_s,
        "median_batch_s": round(statistics.median(b["seconds"] for b in batches), 2),
        "last_over_first": round(last_s / first_s, 2),
        "goal_last_within_1_5_of_first": last_s <= 1.5 * first_s,
        # the first batch also carries the start's own Zendesk reads
        "calls_per_ticket_constant": len(calls) <= 1,
        "largest_store_file_bytes": largest,
        "batches": batches,
    }

"""A backlog through the running bot (issue 29): batches of signed webhooks until thousands of
tickets, each batch drafted and posted before the next is sent.

    python -m benchmarks.bench_http --burst 5000            # batches of 100; prints one JSON object
    python -m benchmarks.bench_http --burst 1000 --batch 50

The whole bot (``draftdesk.app.build``: waitress, Bolt, the webhook handler, the pipeline, the
partitioned store of `draftdesk run`) runs against loopback stand-ins of Slack and Zendesk
(``integrations.standins``) with models that answer at once, so what a batch costs is the bot's own
work per ticket: Zendesk reads, Slack posts and the store's writes. Per batch: the seconds from its
first webhook until every ticket of it has three drafts posted, and the Slack and Zendesk calls it
made. Goal: the last batches within ×1.5 of the first, timed side by side (``run_burst``).
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


class RunningBot:
    """One bot with its own Slack and Zendesk stand-ins holding ``tickets`` new tickets."""

    def __init__(self, folder: Path, tickets: int) -> None:
        self.slack, self.zendesk = FakeSlack(), FakeZendesk()
        self.zendesk.add_user(100, "Customer One", "customer@example.com")
        for ticket in range(1, tickets + 1):
            self.zendesk.add_ticket(
                ticket, f"Backup stuck #{ticket}", 100, comments=[(100, "My backup is stuck.", True)]
            )
        folder.mkdir()
        self.folder = folder
        settings = load_settings(_config(folder, self.slack, self.zendesk), env=SECRETS)
        self.app = build(settings, backend=InstantModels())
        self.app.start()
        assert self.app.web is not None
        self.port = self.app.web.port
        self.statuses: dict[str, int] = {}

    def batch(self, pool: ThreadPoolExecutor, tickets: range, timeout_s: float) -> dict[str, Any]:
        """Sends the batch's webhooks and waits until each of its tickets has its drafts posted."""
        slack_before, zendesk_before = len(self.slack.calls), len(self.zendesk.requests)
        began = time.perf_counter()
        for status in pool.map(lambda t: _webhook(self.port, t), tickets):
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        while not _posted(self.app, tickets):
            if time.perf_counter() > began + timeout_s:
                raise TimeoutError(f"the batch from ticket {tickets.start} was not posted in {timeout_s} s")
            time.sleep(0.01)
        return {
            "after_tickets": tickets.start - 1,
            "seconds": round(time.perf_counter() - began, 2),
            "slack_calls": len(self.slack.calls) - slack_before,
            "zendesk_calls": len(self.zendesk.requests) - zendesk_before,
        }

    def close(self) -> int:
        """Stops the bot; the size of the largest store file it left."""
        self.app.stop()
        self.slack.close()
        self.zendesk.close()
        return max((p.stat().st_size for p in (self.folder / "store.json.d").rglob("*.json")), default=0)


def run_burst(total: int, batch: int, side_by_side: int = 3, timeout_s: float = 600.0) -> dict[str, Any]:
    """One bot takes the whole burst; its last ``side_by_side`` batches are sent in turn with the
    first batches of a second, fresh bot, so the goal's two figures are taken on the same machine
    at the same time (the lead bot's batch-by-batch curve before them is minutes apart)."""
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    compared = side_by_side * batch
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(max_workers=8) as pool:
        lead = RunningBot(Path(scratch) / "lead", total)
        fresh = RunningBot(Path(scratch) / "fresh", compared)
        try:
            curve = [
                lead.batch(pool, range(first, min(first + batch, total + 1)), timeout_s)
                for first in range(1, total - compared + 1, batch)
            ]
            first_batches, last_batches = [], []
            for n in range(side_by_side):
                first_batches.append(fresh.batch(pool, range(1 + n * batch, 1 + (n + 1) * batch), timeout_s))
                start = total - compared + 1 + n * batch
                last_batches.append(lead.batch(pool, range(start, start + batch), timeout_s))
        finally:
            largest = max(lead.close(), fresh.close())
    first_s = statistics.median(b["seconds"] for b in first_batches)
    last_s = statistics.median(b["seconds"] for b in last_batches)
    calls = {(b["slack_calls"], b["zendesk_calls"]) for b in [*curve[1:], *first_batches[1:], *last_batches]}
    return {
        "tickets": total,
        "batch": batch,
        "webhook_statuses": {"lead": lead.statuses, "fresh": fresh.statuses},
        "first_batches_s": [b["seconds"] for b in first_batches],
        "last_batches_s": [b["seconds"] for b in last_batches],
        "first_batch_median_s": first_s,
        "last_batch_median_s": last_s,
        "last_over_first": round(last_s / first_s, 2),
        "goal_last_within_1_5_of_first": last_s <= 1.5 * first_s,
        # a bot's first batch also carries its start's own Zendesk reads
        "calls_per_batch_constant": len(calls) <= 1,
        "largest_store_file_bytes": largest,
        "lead_curve": curve + last_batches,
    }

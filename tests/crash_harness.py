"""`draftdesk run` as a real process that can be killed with SIGKILL, against the loopback Slack and
Zendesk stand-ins, for the exactly-once tests and the crash benchmark.

The child (``python -m tests.crash_harness CONFIG PORT_FILE``) is the real application
(`draftdesk.app.build`: store, worker pipeline, Bolt listeners, webhook and HTTP server) with one
part swapped: a scripted model runtime instead of the models, so a restart takes a second, not a
model load. ``DRAFTDESK_CRASH_AT`` in its environment makes it kill itself at a named step
(`bot.drafting.crash_points`). The parent side (`BotProcess`, `write_config`, `thread_census`) starts, kills
and restarts it and counts what reached Slack.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bot.store.partitioned import open_store
from core.domain import JOB_QUEUED, JOB_RUNNING, DraftResult
from integrations.standins.slack_requests import block_action_body, signed_headers
from integrations.standins.slack_server import FakeSlack, RecordedCall
from integrations.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

REPO = Path(__file__).resolve().parents[1]
CHANNEL = "CDRAFTS"
MODELS = ("model-a", "model-b", "model-c")
FAIL_C = "please-fail-model-c"  # a prompt holding this makes model-c fail: the "1 of 3" notice
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-crash",
    "SLACK_SIGNING_SECRET": "crash-signing-secret",
    "ZENDESK_EMAIL": "agent@example.com",
    "ZENDESK_API_TOKEN": "zendesk-token",
    "ZENDESK_WEBHOOK_SECRET": "crash-webhook-secret",
}


class ScriptedBackend:
    """A `core.ports.DraftBackend` without models: each draft names its model, after a short pause
    per batch (a generation takes time, so kills land during it too)."""

    def __init__(self, seconds_per_batch: float = 0.05) -> None:
        self.seconds_per_batch = seconds_per_batch
        self.batches: list[int] = []  # tickets per generate_many call

    def count_tokens(self, model_name: str, text: str) -> int:
        return len(text.split())

    def context_limit(self, model_name: str) -> int:
        return 4096

    def generate(self, prompts: Mapping[str, str]) -> list[DraftResult]:
        return [
            DraftResult(model, None, error="scripted failure")
            if model == "model-c" and FAIL_C in prompt
            else DraftResult(model, f"Hello, this is {model}. Please try restarting the backup.")
            for model, prompt in prompts.items()
        ]

    def generate_many(self, batch: Sequence[Mapping[str, str]]) -> list[list[DraftResult]]:
        self.batches.append(len(batch))
        time.sleep(self.seconds_per_batch)
        return [self.generate(prompts) for prompts in batch]


def write_config(folder: Path, slack_api_url: str, zendesk_url: str) -> Path:
    """A config for HTTP mode on a free port, webhook intake, quick retries, the scripted models."""
    models = "".join(f'\n[[models]]\nname = "{name}"\nbase_model = "scripted/{name}"\n' for name in MODELS)
    path = folder / "config.toml"
    path.write_text(
        f"""
[slack]
mode = "http"
channel = "{CHANNEL}"
api_url = "{slack_api_url}"
[server]
host = "127.0.0.1"
port = 0
[zendesk]
url = "{zendesk_url}"
[intake]
mode = "webhook"
[worker]
retry_base_seconds = 0.1
batch_wait_seconds = 0.05
[digest]
enabled = false
[storage]
path = "{folder / "store.json"}"
{models}"""
    )
    return path


@dataclass
class BotProcess:
    """Starts the bot as a child process, kills it with SIGKILL, starts it again."""

    config: Path
    port_file: Path
    log_file: Path
    process: subprocess.Popen | None = None
    starts: int = 0
    started: list[subprocess.Popen] = field(default_factory=list)

    def start(self, crash_at: str | None = None, timeout: float = 60.0) -> str | None:
        """Start a fresh process; returns its base URL once it serves, or None when it reached
        ``crash_at`` (resuming queued work) before it served."""
        self.port_file.unlink(missing_ok=True)
        env = {**os.environ, **SECRETS, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("DRAFTDESK_CRASH_AT", None)
        if crash_at:
            env["DRAFTDESK_CRASH_AT"] = crash_at
        with self.log_file.open("a") as log:
            log.write(f"\n---- start {self.starts + 1} (crash at {crash_at or '-'}) ----\n")
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.crash_harness", str(self.config), str(self.port_file)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        self.started.append(self.process)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.port_file.exists():
                return f"http://127.0.0.1:{self.port_file.read_text().strip()}"
            if self.process.poll() is not None:
                if crash_at and self.process.returncode == -signal.SIGKILL:
                    return None
                raise RuntimeError(f"the bot exited with {self.process.returncode}: see {self.log_file}")
            time.sleep(0.05)
        raise RuntimeError(f"the bot did not start in {timeout} s: see {self.log_file}")

    def kill(self) -> None:
        """SIGKILL: no clean-up, no flush, as a power cut or the OOM killer."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.wait_exit()

    def kill_all(self) -> None:
        """Every process this started that still runs gets SIGKILL (the test's clean-up)."""
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(30)

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        """SIGTERM: a clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class ThreadCensus:
    """What one ticket has in Slack, counted from the messages themselves (not from their marks)."""

    parents: int = 0
    drafts: dict[str, int] = field(default_factory=dict)  # "Draft A" → messages
    notices: dict[str, int] = field(default_factory=dict)  # notice text → messages


def thread_census(messages: Sequence[Mapping[str, object]]) -> dict[int, ThreadCensus]:
    """Per ticket id: its parent messages and, in all their threads, each draft's and notice's count."""
    census: dict[int, ThreadCensus] = {}
    parent_of: dict[str, int] = {}
    for message in messages:
        text = str(message.get("text") or "")
        if not message.get("thread_ts") and text.startswith("New ticket #"):
            ticket_id = int(text[len("New ticket #") :].split(":", 1)[0])
            census.setdefault(ticket_id, ThreadCensus()).parents += 1
            parent_of[str(message["ts"])] = ticket_id
    for message in messages:
        thread_ts = message.get("thread_ts")
        if not thread_ts or str(thread_ts) not in parent_of:
            continue
        entry = census[parent_of[str(thread_ts)]]
        text = str(message.get("text") or "")
        if text.startswith("Draft "):
            label = text.split(":", 1)[0]
            entry.drafts[label] = entry.drafts.get(label, 0) + 1
        else:
            entry.notices[text] = entry.notices.get(text, 0) + 1
    return census


def send_webhook(base: str, ticket_id: int) -> int:
    """A signed Zendesk webhook for the ticket; the HTTP status (0 if the bot was not there)."""
    body = json.dumps({"ticket_id": str(ticket_id)}).encode()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    secret = SECRETS["ZENDESK_WEBHOOK_SECRET"]
    headers = {SIGNATURE_HEADER: sign(secret, body, stamp), TIMESTAMP_HEADER: stamp}
    try:
        return requests.post(f"{base}/zendesk/webhook", data=body, headers=headers, timeout=10).status_code
    except requests.ConnectionError:
        return 0


def click(base: str, user: str, message_ts: str, thread_ts: str, action_id: str, draft_id: str) -> int:
    """A signed Slack button click on a draft's message; the HTTP status (0 if the bot was not there)."""
    form = "application/x-www-form-urlencoded"
    body = block_action_body(user, CHANNEL, message_ts, thread_ts, action_id, draft_id)
    headers = signed_headers(SECRETS["SLACK_SIGNING_SECRET"], body, form)
    try:
        return requests.post(
            f"{base}/slack/events", data=body.encode(), headers=headers, timeout=10
        ).status_code
    except requests.ConnectionError:
        return 0


def all_posted(store_path: Path, ticket_ids: Sequence[int]) -> bool:
    """Read-only look at the bot's store: no job left, every ticket's drafts posted (or failed)."""
    store = open_store(store_path, read_only=True)
    try:
        if store.jobs(JOB_QUEUED) or store.jobs(JOB_RUNNING):
            return False
        for ticket_id in ticket_ids:
            drafts = store.drafts_for_ticket(ticket_id)
            if not drafts or any(d.text is not None and not d.vote_ts for d in drafts):
                return False
        return True
    finally:
        store.close()


def slow_slack(seconds: float) -> Callable[[RecordedCall], None]:
    """A FakeSlack ``on_call`` hook: each post is answered ``seconds`` after Slack stored it, as over
    a real network, so a kill can land between a post and the bot's record of it."""

    def delay(call: RecordedCall) -> None:
        if call.method == "chat.postMessage":
            time.sleep(seconds)

    return delay


def census(
    tickets: int, kills: int, seed: int, folder: Path, slack_latency: float = 0.1
) -> dict[str, object]:
    """``kills`` SIGKILLs at random moments while ``tickets`` tickets are drafted, then a run
    without faults; what Slack holds afterwards, counted per ticket."""
    from integrations.standins.zendesk_server import FakeZendesk

    rng = random.Random(seed)
    ids = range(1, tickets + 1)
    with FakeSlack(on_call=slow_slack(slack_latency)) as slack, FakeZendesk() as zendesk:
        zendesk.add_user(100, "Maria Schmidt", "maria@example.com")
        for tid in ids:
            question = f"My backup {tid} is stuck at 99%." + (f" {FAIL_C}" if tid % 3 == 0 else "")
            zendesk.add_ticket(tid, f"Backup {tid} stuck", 100, comments=[(100, question, True)])
        config = write_config(folder, slack.api_url, zendesk.url)
        bot = BotProcess(config, folder / "port", folder / "bot.log")
        started = time.monotonic()
        try:
            base = bot.start()
            for tid in ids:
                send_webhook(base, tid)
            for _ in range(kills):
                time.sleep(rng.uniform(0.05, 2.0))
                bot.kill()
                base = bot.start() or ""
            for tid in ids:
                send_webhook(base, tid)
            deadline = time.monotonic() + 300
            while not all_posted(folder / "store.json", ids) and time.monotonic() < deadline:
                time.sleep(0.2)
            bot.stop()
        finally:
            bot.kill()
        messages = slack.messages.get(CHANNEL, [])
        counted = thread_census(messages)
        replied = {m.get("thread_ts") for m in messages if m.get("thread_ts")}
        empty = sum(1 for m in messages if not m.get("thread_ts") and m["ts"] not in replied)
    expected_drafts = {tid: 2 if tid % 3 == 0 else 3 for tid in ids}
    return {
        "tickets": tickets,
        "kills": kills,
        "seed": seed,
        "slack_latency_s": slack_latency,
        "seconds": round(time.monotonic() - started, 1),
        "extra_parents": sum(max(0, c.parents - 1) for c in counted.values()),
        "threads_left_empty": empty,  # a second parent took the drafts
        "tickets_without_thread": sum(1 for tid in ids if tid not in counted),
        "extra_draft_messages": sum(max(0, n - 1) for c in counted.values() for n in c.drafts.values()),
        "missing_draft_messages": sum(
            max(0, expected_drafts[tid] - len(counted[tid].drafts)) for tid in ids if tid in counted
        ),
        "extra_notices": sum(max(0, n - 1) for c in counted.values() for n in c.notices.values()),
    }


def main(argv: Sequence[str]) -> None:
    """The child: run the bot until SIGTERM (or a SIGKILL), its port written to PORT_FILE.

    ``census [TICKETS KILLS SEED]``: the random-kill census of the running code, as one JSON object.
    """
    if argv and argv[0] == "census":
        numbers = [int(a) for a in argv[1:4]] + [12, 6, 1][len(argv[1:4]) :]
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(census(*numbers, folder=Path(folder))))
        return
    from bot.config import load_settings
    from draftdesk.app import build

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config, port_file = Path(argv[0]), Path(argv[1])
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    app = build(load_settings(config, env=dict(os.environ)), backend=ScriptedBackend())
    app.start()
    assert app.web is not None
    partial = port_file.with_name(port_file.name + ".tmp")
    partial.write_text(str(app.web.port))
    partial.replace(port_file)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    app.stop()


def _exit_with_parent(parent: int) -> None:
    """A bot whose test is gone (the runner killed) must not run on: it exits with its parent."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])

"""`draftdesk run` as a real process that can be killed with SIGKILL, against the loopback Slack and
Zendesk stand-ins, for the exactly-once tests and the crash benchmark.

The child (``python -m tests.crash_harness CONFIG PORT_FILE``) is the real application
(`draftdesk.app.build`: store, worker pipeline, Bolt listeners, webhook and HTTP server) with one
part swapped: a scripted model runtime instead of the models, so a restart takes a second, not a
model load. ``DRAFTDESK_CRASH_AT`` in its environment makes it kill itself at a named step
(`bot.crash_points`). The parent side (`BotProcess`, `write_config`, `thread_census`) starts, kills
and restarts it and counts what reached Slack.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.domain import DraftResult

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

    def start(self, crash_at: str | None = None, timeout: float = 60.0) -> str:
        """Start a fresh process; returns its base URL once it serves."""
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.port_file.exists():
                return f"http://127.0.0.1:{self.port_file.read_text().strip()}"
            if self.process.poll() is not None:
                raise RuntimeError(f"the bot exited with {self.process.returncode}: see {self.log_file}")
            time.sleep(0.05)
        raise RuntimeError(f"the bot did not start in {timeout} s: see {self.log_file}")

    def kill(self) -> None:
        """SIGKILL: no clean-up, no flush, as a power cut or the OOM killer."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.wait_exit()

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


def main(argv: Sequence[str]) -> None:
    """The child: run the bot until SIGTERM (or a SIGKILL), its port written to PORT_FILE."""
    from bot.config import load_settings
    from draftdesk.app import build

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config, port_file = Path(argv[0]), Path(argv[1])
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


if __name__ == "__main__":
    main(sys.argv[1:])

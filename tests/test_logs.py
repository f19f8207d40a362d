"""Logs: `--log-format json` anywhere on the command line, every accepted webhook with its ticket id,
and no secret in any line."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.drafting.intake import handle_zendesk_webhook
from bot.store.memory import MemoryStore
from draftdesk.logs import RedactingFormatter, json_formatter
from integrations.standins.slack_server import FakeSlack
from integrations.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

ROOT = Path(__file__).resolve().parents[1]


def test_every_accepted_webhook_is_logged_with_its_ticket_id(caplog) -> None:
    store = MemoryStore()
    store.enqueue(8, "poll")
    body = b'{"ticket_id": "7"}'
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    headers = {SIGNATURE_HEADER: sign("s3cret", body, stamp), TIMESTAMP_HEADER: stamp}
    with caplog.at_level(logging.INFO, logger="bot.drafting.intake"):
        assert handle_zendesk_webhook(body, headers, "s3cret", store).status == 200
        second = {SIGNATURE_HEADER: sign("s3cret", b'{"ticket_id": 8}', stamp), TIMESTAMP_HEADER: stamp}
        assert handle_zendesk_webhook(b'{"ticket_id": 8}', second, "s3cret", store).status == 200
    accepted = [r for r in caplog.records if r.getMessage().startswith("webhook accepted")]
    assert [(r.ticket_id, r.getMessage()) for r in accepted] == [
        (7, "webhook accepted: ticket 7 queued"),
        (8, "webhook accepted: ticket 8 already queued"),
    ]


def test_json_lines_carry_the_extra_fields_and_never_a_secret() -> None:
    formatter = RedactingFormatter(json_formatter(), ["xoxb-very-secret", "abc"])  # too short to redact
    record = logging.LogRecord(
        "bot.drafting.intake", logging.INFO, __file__, 1, "token %s for %s", ("xoxb-very-secret", "abc"), None
    )
    record.ticket_id = 7
    line = json.loads(formatter.format(record))
    assert line["level"] == "INFO" and line["logger"] == "bot.drafting.intake" and line["ticket_id"] == 7
    assert line["message"] == "token [redacted] for abc" and "time" in line


@pytest.mark.parametrize("where", ["before", "after"])
def test_log_format_json_before_or_after_the_command(tmp_path: Path, where: str) -> None:
    with FakeSlack(token="xoxb-json-logs-token") as slack:
        slack.channels["CDRAFTS"] = True
        config = tmp_path / "config.toml"
        # Zendesk cannot be reached: a warning (logged) while the missing model stops start-up.
        config.write_text(
            f'[slack]\nmode = "http"\nchannel = "CDRAFTS"\napi_url = "{slack.api_url}"\n'
            '[zendesk]\nurl = "http://127.0.0.1:9"\n[intake]\nmode = "poll"\n'
            '[[models]]\nname = "m"\nbase_model = "/nowhere"\n'
        )
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": "xoxb-json-logs-token",
            "SLACK_SIGNING_SECRET": "json-logs-signing",
            "ZENDESK_EMAIL": "agent@example.com",
            "ZENDESK_API_TOKEN": "json-logs-zendesk-token",
        }
        option = ["--log-format", "json"]
        command = ["run", "--config", str(config)]
        argv = option + command if where == "before" else command + option
        result = subprocess.run(
            [str(Path(sys.executable).parent / "draftdesk"), *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=180,
        )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    warning = next(line for line in logged if line["level"] == "WARNING")
    assert warning["logger"] == "draftdesk.cli" and warning["message"].startswith(
        "Zendesk API user: not checked"
    )
    assert "json-logs-zendesk-token" not in result.stderr and "xoxb-json-logs-token" not in result.stderr

"""Logging for every command: text for people, JSON Lines for log shippers, secrets never shown.

JSON comes from python-json-logger: one object a line with ``time``, ``level``, ``logger``,
``message``, the record's extra fields (``ticket_id`` on the webhook lines) and ``exc_info``
as text; it keeps up with the logging module's record attributes so we do not have to. Whatever
the format, the value of every secret set in the environment is replaced by ``[redacted]`` in the
finished line, whichever library logged it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from core.secrets import SECRET_ENV_VARS

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"
# The credentials; ZENDESK_EMAIL names the API user, which start-up reports on purpose.
REDACTED_ENV_VARS = tuple(name for name in SECRET_ENV_VARS if name != "ZENDESK_EMAIL")
SHORTEST_SECRET = 6  # shorter values would redact ordinary words


class RedactingFormatter(logging.Formatter):
    """``inner``'s line with each secret value replaced by ``[redacted]``."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = sorted({s for s in secrets if len(s) >= SHORTEST_SECRET}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        return line


def json_formatter() -> logging.Formatter:
    """``time`` is ISO 8601 in UTC, as log shippers parse it."""
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def configure_logging(
    level: str, log_format: str, env: Mapping[str, str], stream: TextIO = sys.stderr
) -> None:
    """One handler on the root logger, like ``logging.basicConfig``: logging that someone else set up
    (a test runner's capture) is left alone; our own earlier handler is replaced."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "draftdesk", False)]
    if root.handlers and not ours:
        return
    for old in ours:
        root.removeHandler(old)
    inner = json_formatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(inner, (env.get(name, "").strip() for name in REDACTED_ENV_VARS)))
    handler.draftdesk = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)

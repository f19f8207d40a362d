"""`/draftdesk report [week|month]`: the digest on demand, for the digest's recipients only.

Model names must stay hidden from the raters while the study runs, so anyone else gets a polite
refusal. The refusal and the "on its way" note are the ack itself (Slack shows an ack's text to
the caller alone); the report is composed after the ack and sent by DM with its chart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any

from slack_bolt import Ack, App, BoltContext

from bot.slack.listeners import AfterAck

log = logging.getLogger(__name__)

COMMAND = "/draftdesk"
PERIODS = {
    "week": (timedelta(days=7), "Draft ratings, last 7 days"),
    "month": (timedelta(days=30), "Draft ratings, last 30 days"),
}
USAGE = "Usage: `/draftdesk report` (the last 7 days) or `/draftdesk report month` (the last 30 days)."
REFUSAL = (
    "Sorry, reports are only for the digest's recipients: while drafts are rated blind, which model "
    "wrote which draft stays hidden from the raters. Ask your team lead, or to get reports, have an "
    "admin add your Slack user ID to `[digest] users`."
)


def parse_report_request(text: str) -> tuple[timedelta, str] | None:
    """(period, title) for ``report``, ``report week`` or ``report month``; None for anything else."""
    words = text.lower().split()
    if not words or words[0] != "report" or len(words) > 2:
        return None
    return PERIODS.get(words[1] if len(words) == 2 else "week")


def register_report_command(
    app: App,
    send_report: Callable[[str, timedelta, str], None],
    recipients: Collection[str],
    after_ack: AfterAck,
) -> None:
    """``send_report(user, period, title)`` runs after the ack, for a recipient only."""

    @app.command(COMMAND)
    def on_command(ack: Ack, command: dict[str, Any], context: BoltContext) -> None:
        user = context.user_id or ""
        request = parse_report_request(command.get("text") or "")
        if request is None:
            ack(USAGE)
        elif user not in recipients:
            log.info("refused /draftdesk report to %s: not a digest recipient", user)
            ack(REFUSAL)
        else:
            period, title = request
            ack(f"{title}: on its way to you as a direct message.")
            after_ack.submit(user, lambda: send_report(user, period, title))

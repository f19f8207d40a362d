"""Bolt's Socket Mode handler with draftdesk's check of what Slack sends
(`integrations.slack_payloads`): the same check `bot.operations.web` makes over HTTP."""

from __future__ import annotations

import logging

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from integrations.slack_payloads import payload_kind, payload_problem

log = logging.getLogger(__name__)


class CheckedSocketModeHandler(SocketModeHandler):
    """Turns away a payload of the wrong shape: acknowledged (Slack would send it again), one log
    line, nothing else; every other payload goes to Bolt as before."""

    def handle(self, client: BaseSocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        payload = req.payload if isinstance(req.payload, dict) else {}
        problem = payload_problem(payload) if payload else "the payload is not an object"
        if problem is not None:
            log.warning("ignored a Slack %s from Socket Mode: %s", payload_kind(payload), problem)
            client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        super().handle(client, req)  # type: ignore[arg-type]

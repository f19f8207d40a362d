"""Builds Slack's signed HTTP requests (interactivity and Events API) the way Slack sends them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import parse_qs, urlencode


def slack_signature(secret: str, timestamp: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


def signed_headers(secret: str, body: str, content_type: str, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(secret, ts, body),
    }


def block_action_body(
    user: str,
    channel: str,
    message_ts: str,
    thread_ts: str | None,
    action_id: str,
    value: str,
    element: dict | None = None,
) -> str:
    """A `block_actions` interaction, form-encoded as `payload=<json>` like Slack posts it: a button
    click, or with ``element`` (``type``, ``block_id``, ``selected_option`` or ``value``) another
    element's action on an ephemeral message (Slack then sends no ``message``)."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0DEMO"},
        "api_app_id": "A0DEMO",
        "token": "legacy-verification-token-unused",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{int(time.time())}.trigger",
        "team": {"id": "T0DEMO", "domain": "demo"},
        "channel": {"id": channel, "name": "support-drafts"},
        "message": {"type": "message", "ts": message_ts, "thread_ts": thread_ts, "text": "draft"},
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "actions",
                "value": value,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    if element is not None:
        payload["actions"] = [{"action_id": action_id, "action_ts": f"{time.time():.6f}", **element}]
        payload["container"]["is_ephemeral"] = True
        del payload["message"]
    return urlencode({"payload": json.dumps(payload)})


def event_body(event: dict, bot_user_id: str = "U0BOT", event_id: str | None = None) -> str:
    envelope = {
        "token": "legacy-verification-token-unused",
        "team_id": "T0DEMO",
        "api_app_id": "A0DEMO",
        "event": {"event_ts": f"{time.time():.6f}", **event},
        "type": "event_callback",
        "event_id": event_id or f"Ev{time.time_ns()}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": "T0DEMO", "user_id": bot_user_id, "is_bot": True}],
    }
    return json.dumps(envelope)


def reaction_event(kind: str, user: str, reaction: str, channel: str, ts: str) -> dict:
    """`kind` is "reaction_added" or "reaction_removed"."""
    return {
        "type": kind,
        "user": user,
        "reaction": reaction,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "item_user": "U0BOT",
    }


def block_action_payload(
    user: str, channel: str, message_ts: str, thread_ts: str | None, action_id: str, value: str
) -> dict:
    """The `block_actions` payload itself, as a Socket Mode `interactive` envelope carries it."""
    body = block_action_body(user, channel, message_ts, thread_ts, action_id, value)
    return json.loads(parse_qs(body)["payload"][0])


def event_payload(event: dict, bot_user_id: str = "U0BOT", event_id: str | None = None) -> dict:
    """The `event_callback` body as a dict, as a Socket Mode `events_api` envelope carries it."""
    return json.loads(event_body(event, bot_user_id, event_id))


def slash_command_body(user: str, channel: str, command: str, text: str) -> str:
    """A slash command invocation, form-encoded like Slack posts it."""
    return urlencode(
        {
            "token": "legacy-verification-token-unused",
            "team_id": "T0DEMO",
            "team_domain": "demo",
            "channel_id": channel,
            "channel_name": "support-drafts",
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0DEMO",
            "response_url": "https://hooks.slack.invalid/commands/T0DEMO/1/abc",
            "trigger_id": f"{int(time.time())}.trigger",
        }
    )


def view_submission_body(user: str, view: dict, values: dict) -> str:
    """A `view_submission` of the modal ``view`` (as Slack stored it) with the agent's input
    ``values`` (``{block_id: {action_id: {...}}}``), form-encoded like Slack posts it."""
    payload = {
        "type": "view_submission",
        "team": {"id": "T0DEMO", "domain": "demo"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0DEMO"},
        "api_app_id": "A0DEMO",
        "token": "legacy-verification-token-unused",
        "trigger_id": f"{int(time.time())}.trigger",
        "view": {**view, "state": {"values": values}, "team_id": "T0DEMO", "app_id": "A0DEMO"},
        "response_urls": [],
    }
    return urlencode({"payload": json.dumps(payload)})

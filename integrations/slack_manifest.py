"""The Slack app manifest for draftdesk: paste it into "Create New App → From an app manifest".

It asks for exactly what the bot uses: posting drafts (`chat:write`), reading rating reactions
(`reactions:read` and the `reaction_added`/`reaction_removed` events), the digest's direct messages
(`im:write`) and its chart (`files:write`), the e-mail of an agent who sends a draft, to find them
in Zendesk (`users:read`, `users:read.email`), reading its own messages back after a restart
(`channels:history`, `groups:history` in a private channel: never a draft posted twice),
interactivity for the buttons and the send modal, the App Home tab (`app_home_opened`), the
`/draftdesk` slash command (`commands`) that sends a report on demand, and checking at start-up that
the bot is in the drafts channel (`channels:read`, `groups:read` for a private one:
`conversations.info`). In Socket Mode Slack needs no public URL; in HTTP mode events and
interactivity go to ``PUBLIC_URL/slack/events``. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

SLACK_EVENTS_PATH = "/slack/events"
BOT_SCOPES = (
    "chat:write",
    "reactions:read",
    "im:write",
    "files:write",
    "users:read",
    "users:read.email",
    "commands",
    "channels:read",
    "groups:read",
    "channels:history",
    "groups:history",
)
SLASH_COMMAND = {
    "command": "/draftdesk",
    "description": "The draft ratings report, for the digest's recipients",
    "usage_hint": "report [week|month]",
    "should_escape": False,
}
BOT_EVENTS = ("reaction_added", "reaction_removed", "app_home_opened")


class ManifestError(ValueError):
    """The manifest cannot be made as asked; the message says what to pass."""


def app_manifest(socket_mode: bool, public_url: str | None = None, name: str = "draftdesk") -> dict[str, Any]:
    """The manifest as a dict (JSON-ready). HTTP mode needs ``public_url``, an https:// address."""
    settings: dict[str, Any] = {
        "event_subscriptions": {"bot_events": list(BOT_EVENTS)},
        "interactivity": {"is_enabled": True},
        "org_deploy_enabled": False,
        "socket_mode_enabled": socket_mode,
        "token_rotation_enabled": False,
    }
    if not socket_mode:
        if not public_url:
            raise ManifestError(
                "HTTP mode needs the address Slack will call: pass --public-url https://your-host "
                '(or use [slack] mode = "socket")'
            )
        parts = urlsplit(public_url)
        if parts.scheme != "https" or not parts.netloc:
            raise ManifestError(
                f"--public-url must be an https:// address Slack can reach, got {public_url!r}"
            )
        endpoint = f"https://{parts.netloc}{parts.path.rstrip('/')}{SLACK_EVENTS_PATH}"
        settings["event_subscriptions"]["request_url"] = endpoint
        settings["interactivity"]["request_url"] = endpoint
        command = {**SLASH_COMMAND, "url": endpoint}
    else:
        command = dict(SLASH_COMMAND)
    return {
        "display_information": {
            "name": name,
            "description": "Three blind draft replies for every Zendesk ticket, rated by your agents.",
        },
        "features": {
            "bot_user": {"display_name": name, "always_online": True},
            "app_home": {"home_tab_enabled": True, "messages_tab_enabled": False},
            "slash_commands": [command],
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": settings,
    }

"""The Slack app manifest asks for what the bot uses, and points Slack at the bot in HTTP mode."""

from __future__ import annotations

import pytest

from integrations.slack_manifest import ManifestError, app_manifest


def test_socket_mode_needs_no_public_url_and_enables_socket_mode() -> None:
    manifest = app_manifest(socket_mode=True)
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert (
        "request_url" not in settings["event_subscriptions"]
        and "request_url" not in settings["interactivity"]
    )
    events = settings["event_subscriptions"]["bot_events"]
    assert events == ["reaction_added", "reaction_removed", "app_home_opened"]
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["oauth_config"]["scopes"]["bot"] == [
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
    ]
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/draftdesk" and "url" not in command  # Socket Mode delivers it


def test_http_mode_sends_events_and_clicks_to_the_bots_endpoint() -> None:
    manifest = app_manifest(socket_mode=False, public_url="https://bot.example.com/draftdesk/")
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["event_subscriptions"]["request_url"] == "https://bot.example.com/draftdesk/slack/events"
    assert settings["interactivity"] == {
        "is_enabled": True,
        "request_url": "https://bot.example.com/draftdesk/slack/events",
    }
    [command] = manifest["features"]["slash_commands"]
    assert command["url"] == "https://bot.example.com/draftdesk/slack/events"


@pytest.mark.parametrize("url", [None, "http://bot.example.com", "bot.example.com", "https://"])
def test_http_mode_refuses_a_missing_or_non_https_url_with_what_to_pass(url: str | None) -> None:
    with pytest.raises(ManifestError, match="--public-url"):
        app_manifest(socket_mode=False, public_url=url)

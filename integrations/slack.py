"""Thin Slack Web API layer: a retrying WebClient and the few calls the worker makes.

slack_sdk retries only connection errors by default; a 429 (with ``Retry-After``) or a 500/503
would surface as an error. :func:`make_web_client` attaches the SDK's own retry handlers for all
three. Errors leave this module as :class:`SlackError` (a ``core.ports.ChatError``), carrying the
Slack error code and a hint that tells the operator what to fix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.web import SlackResponse

from core.domain import ChatUser, MessageMark
from core.ports import ChatError

log = logging.getLogger(__name__)

WORKSPACE_RETRY_SECONDS = 300.0

DEFAULT_BASE_URL = "https://slack.com/api/"

_HINTS: dict[str, str] = {
    "not_in_channel": "the bot is not a member of this channel: invite it with /invite @draftdesk",
    "channel_not_found": (
        "check slack.channel in the config: it must be a channel ID like C0123456789 (not a name), "
        "and a private channel needs the bot invited with /invite @draftdesk"
    ),
    "is_archived": "the channel is archived: unarchive it or set another slack.channel",
    "invalid_auth": "check SLACK_BOT_TOKEN: it must be the Bot User OAuth Token (xoxb-…) of this workspace",
    "not_authed": "check SLACK_BOT_TOKEN: no token was sent",
    "account_inactive": "check SLACK_BOT_TOKEN: the token was revoked or the app uninstalled",
    "token_revoked": "check SLACK_BOT_TOKEN: the token was revoked; reinstall the app",
    "ratelimited": "Slack kept rate-limiting after the retries: try again later",
    "msg_blocks_too_long": "the message blocks are too long: split the text into more messages",
    "invalid_blocks": "Slack refused the blocks: check them against the Block Kit limits",
    "message_not_found": "the message to update no longer exists (deleted?)",
    "user_not_found": "the Slack user ID is wrong or the user is gone",
    "expired_trigger_id": "the click is over 3 seconds old: click the button again",
    "hash_conflict": "the modal was changed meanwhile",
}


class SlackError(ChatError):
    """A Slack Web API call failed. ``error`` (also ``code``) is Slack's code, e.g. ``not_in_channel``."""

    def __init__(self, method: str, error: str, hint: str | None = None, needed: str | None = None) -> None:
        self.method = method
        self.error = error
        self.hint = hint
        self.needed = needed
        message = f"Slack {method} failed: {error}"
        if hint:
            message += f" ({hint})"
        super().__init__(message, code=error)


def hint_for(error: str, needed: str | None = None) -> str | None:
    """What the operator should do about a Slack error code, or None when there is no advice."""
    if error == "missing_scope":
        if needed:
            return f"add the {needed} scope to the Slack app (OAuth & Permissions) and reinstall it"
        return "add the missing scope to the Slack app (OAuth & Permissions) and reinstall it"
    return _HINTS.get(error)


def make_web_client(
    token: str,
    base_url: str = DEFAULT_BASE_URL,
    max_retries: int = 3,
    timeout: int = 30,
) -> WebClient:
    """A WebClient that retries 429 (honouring ``Retry-After``), 500/503 and connection errors.

    ``base_url`` lets tests and the offline demo point the client at a loopback fake.
    """
    if not base_url.endswith("/"):
        base_url += "/"  # WebClient joins with urljoin: without the slash the last segment is lost
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=max_retries),
            RateLimitErrorRetryHandler(max_retry_count=max_retries),
            ServerErrorRetryHandler(max_retry_count=max_retries),
        ],
    )


def _error_from_response(method: str, response: SlackResponse) -> SlackError:
    data = response.data if isinstance(response.data, dict) else {}
    error = str(data.get("error") or "")
    needed = str(data["needed"]) if data.get("needed") else None
    if not error or " " in error:
        # Not a Slack error code: an HTTP error page (e.g. a 503 after the retries) that
        # slack_sdk could not parse as JSON. Keep the status as the code, the body as the hint.
        result = SlackError(method, f"http_{response.status_code}", error[:300] or None)
    else:
        result = SlackError(method, error, hint_for(error, needed), needed)
    result.retry_after = _retry_after(response.headers)
    return result


def _retry_after(headers: Any) -> float | None:
    """Slack's Retry-After (seconds) on a 429 that outlasted the client's retries."""
    for name, value in (headers or {}).items():
        if str(name).lower() == "retry-after":
            try:
                return max(0.0, float(value[0] if isinstance(value, list) else value))
            except (TypeError, ValueError):
                return None
    return None


def metadata_of(mark: MessageMark) -> dict[str, Any]:
    """A mark as Slack message metadata: ``event_type`` and a flat ``event_payload``."""
    return {"event_type": mark.event_type, "event_payload": mark.as_payload()}


def mark_of(message: dict[str, Any]) -> MessageMark | None:
    """The draftdesk mark of a message read back from Slack (its ``metadata``), or None."""
    metadata = message.get("metadata")
    if not isinstance(metadata, dict):
        return None
    event_type, payload = metadata.get("event_type"), metadata.get("event_payload")
    if not isinstance(event_type, str) or not event_type.startswith("draftdesk_"):
        return None
    if not isinstance(payload, dict):
        return None
    return MessageMark.of(event_type, **payload)


def _marks(messages: list[dict[str, Any]]) -> dict[MessageMark, str]:
    """mark → ts of the marked messages; the oldest wins if a mark was ever posted twice."""
    found: dict[MessageMark, str] = {}
    for message in sorted(messages, key=lambda m: float(m.get("ts") or 0)):
        mark = mark_of(message)
        if mark is not None and message.get("ts"):
            found.setdefault(mark, str(message["ts"]))
    return found


def message_permalink(workspace_url: str, channel: str, ts: str, thread_ts: str | None = None) -> str:
    """``https://acme.slack.com/archives/C123/p1700000000000100``, plus the thread of a reply."""
    link = f"{workspace_url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel}"
    return link


class SlackPoster:
    """The ``core.ports.ChatPoster`` of Slack: Web API calls, errors turned into :class:`SlackError`.

    Every message is sent with a top-level ``text`` fallback (used in notifications and by screen
    readers) next to its blocks, and with link unfurling off: drafts and ticket subjects may
    contain customer URLs that should not be fetched and previewed.
    """

    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._workspace_url: str | None = None  # from auth.test, once it answered
        self._workspace_unknown_until = 0.0  # after a failed auth.test: not asked again before this

    def message_link(self, channel: str, ts: str, thread_ts: str | None = None) -> str | None:
        """A link that opens the message in Slack (``chat.getPermalink``'s form, built without a
        call per message); None while the workspace's address is not known: auth.test failed, and
        is not asked again for a while (a Home tab lists dozens of lines)."""
        if self._workspace_url is None:
            if time.monotonic() < self._workspace_unknown_until:
                return None
            try:
                self._workspace_url = str(self._call("auth.test", self.client.auth_test)["url"])
            except (SlackError, KeyError) as exc:
                self._workspace_unknown_until = time.monotonic() + WORKSPACE_RETRY_SECONDS
                log.warning("no links to Slack messages: could not read the workspace's address: %s", exc)
                return None
        return message_permalink(self._workspace_url, channel, ts, thread_ts)

    def _call(self, method: str, fn: Callable[..., SlackResponse], **kwargs: Any) -> SlackResponse:
        try:
            response = fn(**kwargs)
        except SlackApiError as exc:
            raise _error_from_response(method, exc.response) from exc
        except SlackClientError as exc:
            raise SlackError(method, "client_error", str(exc)) from exc
        except OSError as exc:  # URLError, ConnectionResetError, timeouts, after the retries
            raise SlackError(method, "connection_error", f"could not reach Slack: {exc}") from exc
        return response

    def post(self, channel: str, text: str, blocks: list[dict] | None = None) -> str:
        """Post a message in a channel; returns its ``ts``."""
        return self._post_message(channel, text, blocks)

    def post_parent(
        self, channel: str, text: str, blocks: list[dict] | None = None, mark: MessageMark | None = None
    ) -> str:
        """Post the message that opens a ticket's thread; its ``ts`` is the thread's id."""
        return self._post_message(channel, text, blocks, mark=mark)

    def post_in_thread(
        self,
        channel: str,
        thread_ts: str,
        text: str,
        blocks: list[dict] | None = None,
        mark: MessageMark | None = None,
    ) -> str:
        """Reply in the thread of the parent message ``thread_ts``; returns the reply's ``ts``."""
        return self._post_message(channel, text, blocks, thread_ts=thread_ts, mark=mark)

    def _post_message(
        self,
        channel: str,
        text: str,
        blocks: list[dict] | None,
        thread_ts: str | None = None,
        mark: MessageMark | None = None,
    ) -> str:
        kwargs: dict[str, Any] = {
            "channel": channel,
            "text": text,
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if blocks is not None:
            kwargs["blocks"] = blocks
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
        if mark is not None:
            kwargs["metadata"] = metadata_of(mark)
        response = self._call("chat.postMessage", self.client.chat_postMessage, **kwargs)
        return str(response["ts"])

    def marked_in_thread(self, channel: str, thread_ts: str) -> dict[MessageMark, str]:
        """The thread's marked messages, every page of ``conversations.replies`` (needs the
        ``channels:history`` scope, ``groups:history`` in a private channel)."""
        pages = self._pages(
            "conversations.replies", self.client.conversations_replies, channel=channel, ts=thread_ts
        )
        return _marks(pages)

    def marked_in_channel(self, channel: str, since: datetime) -> dict[MessageMark, str]:
        """The channel's marked top-level messages since ``since`` (``conversations.history``)."""
        oldest = f"{since.timestamp():.6f}"
        pages = self._pages(
            "conversations.history", self.client.conversations_history, channel=channel, oldest=oldest
        )
        return _marks(pages)

    def _pages(self, method: str, fn: Callable[..., SlackResponse], **kwargs: Any) -> list[dict[str, Any]]:
        """Every message of a paginated read, metadata included."""
        messages: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = self._call(method, fn, include_all_metadata=True, limit=200, cursor=cursor, **kwargs)
            messages += page.get("messages") or []
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return messages

    def message(self, channel: str, ts: str) -> tuple[str, list[dict]] | None:
        """A thread's parent message as it reads now, (text, blocks) (``conversations.replies``,
        its first message); None if Slack has no such message."""
        try:
            page = self._call(
                "conversations.replies", self.client.conversations_replies, channel=channel, ts=ts, limit=1
            )
        except SlackError as exc:
            if exc.code in ("thread_not_found", "message_not_found"):
                return None
            raise
        first = (page.get("messages") or [None])[0]
        if not first or first.get("ts") != ts:
            return None
        return str(first.get("text") or ""), list(first.get("blocks") or [])

    def update(self, channel: str, ts: str, text: str, blocks: list[dict] | None = None) -> None:
        """Replace a message's text and blocks (``channel`` must be an ID, as chat.update requires)."""
        kwargs: dict[str, Any] = {"channel": channel, "ts": ts, "text": text}
        if blocks is not None:
            kwargs["blocks"] = blocks
        self._call("chat.update", self.client.chat_update, **kwargs)

    def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        thread_ts: str | None = None,
        blocks: list[dict] | None = None,
    ) -> None:
        """A message only ``user`` sees (vote confirmations, errors after a button press)."""
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
        if blocks is not None:
            kwargs["blocks"] = blocks
        self._call("chat.postEphemeral", self.client.chat_postEphemeral, **kwargs)

    def dm(self, user_id: str, text: str, blocks: list[dict] | None = None) -> None:
        """Send a direct message: open (or find) the DM channel with the user, then post in it."""
        self._post_message(self._dm_channel(user_id), text, blocks)

    def upload(self, channel: str, filename: str, content: bytes, title: str) -> None:
        """Share a file in a channel (``files_upload_v2``; scope ``files:write``)."""
        self._call(
            "files.upload",
            self.client.files_upload_v2,
            channel=channel,
            file=content,
            filename=filename,
            title=title,
        )

    def dm_upload(self, user_id: str, filename: str, content: bytes, title: str) -> None:
        self.upload(self._dm_channel(user_id), filename, content, title)

    def _dm_channel(self, user_id: str) -> str:
        opened = self._call("conversations.open", self.client.conversations_open, users=user_id)
        return str(opened["channel"]["id"])

    # ---- modals and profiles (core.ports.ChatModals) ---------------------------------------------

    def open_view(self, trigger_id: str, view: dict) -> tuple[str, str]:
        """``views.open``: the modal for a click, within the 3 seconds its ``trigger_id`` lives."""
        opened = self._call("views.open", self.client.views_open, trigger_id=trigger_id, view=view)
        return str(opened["view"]["id"]), str(opened["view"].get("hash") or "")

    def update_view(self, view_id: str, view: dict, view_hash: str | None = None) -> None:
        kwargs: dict[str, Any] = {"view_id": view_id, "view": view}
        if view_hash:
            kwargs["hash"] = view_hash
        self._call("views.update", self.client.views_update, **kwargs)

    def publish_home(self, user_id: str, view: dict) -> None:
        """``views.publish``: the user's App Home tab."""
        self._call("views.publish", self.client.views_publish, user_id=user_id, view=view)

    def user_profile(self, user_id: str) -> ChatUser:
        """``users.info`` (scopes ``users:read``, ``users:read.email``): name and e-mail."""
        info = self._call("users.info", self.client.users_info, user=user_id)
        user = info["user"] or {}
        profile = user.get("profile") or {}
        name = (
            profile.get("real_name")
            or user.get("real_name")
            or profile.get("display_name")
            or user.get("name")
        )
        return ChatUser(user_id, str(name or user_id), str(profile.get("email") or ""))

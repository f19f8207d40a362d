"""A ``core.ports.ChatPoster`` for unit tests: records every call, keeps the messages, posts nothing.

New messages get increasing Slack-like ``ts`` values (``1700000000.000100``, ``…000200``), so a
test can check what the worker, the listeners or the digest stored against what they posted.
``fail_next`` makes the next calls of one method raise ``ChatError``, as Slack would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.domain import MessageMark
from core.ports import ChatError


@dataclass(frozen=True)
class ChatCall:
    """One call: ``method`` is the ChatPoster method's name; ``ts`` the message posted or updated."""

    method: str
    channel: str
    text: str
    blocks: list[dict] | None = None
    ts: str | None = None
    thread_ts: str | None = None
    user: str | None = None


@dataclass
class ChatMessage:
    channel: str
    ts: str
    text: str
    blocks: list[dict] | None
    thread_ts: str | None = None
    edits: int = 0
    mark: MessageMark | None = None


@dataclass
class RecordingPoster:
    calls: list[ChatCall] = field(default_factory=list)
    messages: dict[tuple[str, str], ChatMessage] = field(default_factory=dict)  # (channel, ts) → message
    files: list[tuple[str, str, bytes, str]] = field(default_factory=list)  # (channel, name, bytes, title)
    _failures: dict[str, list[ChatError]] = field(default_factory=dict)
    _counter: int = 0

    # ---- the ChatPoster contract ----------------------------------------------------------------

    def post(self, channel: str, text: str, blocks: list[dict] | None = None) -> str:
        return self._new_message("post", channel, text, blocks)

    def post_parent(
        self, channel: str, text: str, blocks: list[dict] | None = None, mark: MessageMark | None = None
    ) -> str:
        return self._new_message("post_parent", channel, text, blocks, mark=mark)

    def post_in_thread(
        self,
        channel: str,
        thread_ts: str,
        text: str,
        blocks: list[dict] | None = None,
        mark: MessageMark | None = None,
    ) -> str:
        return self._new_message("post_in_thread", channel, text, blocks, thread_ts, mark)

    def marked_in_thread(self, channel: str, thread_ts: str) -> dict[MessageMark, str]:
        self._maybe_fail("marked_in_thread")
        self.calls.append(ChatCall("marked_in_thread", channel, "", ts=thread_ts))
        return {m.mark: m.ts for m in self.thread(channel, thread_ts) if m.mark is not None}

    def marked_in_channel(self, channel: str, since: datetime) -> dict[MessageMark, str]:
        self._maybe_fail("marked_in_channel")
        self.calls.append(ChatCall("marked_in_channel", channel, ""))
        return {
            m.mark: m.ts
            for (c, _), m in self.messages.items()
            if c == channel and m.thread_ts is None and m.mark is not None
        }

    def message(self, channel: str, ts: str) -> tuple[str, list[dict]] | None:
        self._maybe_fail("message")
        found = self.messages.get((channel, ts))
        return None if found is None else (found.text, list(found.blocks or []))

    def update(self, channel: str, ts: str, text: str, blocks: list[dict] | None = None) -> None:
        self._maybe_fail("update")
        message = self.messages.get((channel, ts))
        if message is None:
            raise ChatError(f"no message {ts} in {channel} to update", code="message_not_found")
        message.text, message.blocks, message.edits = text, blocks, message.edits + 1
        self.calls.append(ChatCall("update", channel, text, blocks, ts=ts))

    def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        thread_ts: str | None = None,
        blocks: list[dict] | None = None,
    ) -> None:
        self._maybe_fail("ephemeral")
        self.calls.append(ChatCall("ephemeral", channel, text, blocks, thread_ts=thread_ts, user=user))

    def dm(self, user_id: str, text: str, blocks: list[dict] | None = None) -> None:
        self._maybe_fail("dm")
        channel = f"D{user_id}"
        ts = self._next_ts()
        self.messages[(channel, ts)] = ChatMessage(channel, ts, text, blocks)
        self.calls.append(ChatCall("dm", channel, text, blocks, ts=ts, user=user_id))

    def upload(self, channel: str, filename: str, content: bytes, title: str) -> None:
        self._maybe_fail("upload")
        self.files.append((channel, filename, content, title))
        self.calls.append(ChatCall("upload", channel, title))

    def dm_upload(self, user_id: str, filename: str, content: bytes, title: str) -> None:
        self._maybe_fail("dm_upload")
        self.files.append((f"D{user_id}", filename, content, title))
        self.calls.append(ChatCall("dm_upload", f"D{user_id}", title, user=user_id))

    # ---- for the tests --------------------------------------------------------------------------

    def fail_next(self, method: str, code: str = "fatal_error", times: int = 1) -> None:
        """The next ``times`` calls of ``method`` raise ChatError(code) and record nothing."""
        errors = [ChatError(f"{method} failed: {code}", code=code) for _ in range(times)]
        self._failures.setdefault(method, []).extend(errors)

    def calls_to(self, method: str) -> list[ChatCall]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, thread_ts: str) -> list[ChatMessage]:
        """The parent message and its replies, oldest first, as they read now (updates applied)."""
        in_thread = [
            m
            for (c, ts), m in self.messages.items()
            if c == channel and (ts == thread_ts or m.thread_ts == thread_ts)
        ]
        return sorted(in_thread, key=lambda m: float(m.ts))

    def _new_message(
        self,
        method: str,
        channel: str,
        text: str,
        blocks: list[dict] | None,
        thread_ts: str | None = None,
        mark: MessageMark | None = None,
    ) -> str:
        self._maybe_fail(method)
        ts = self._next_ts()
        self.messages[(channel, ts)] = ChatMessage(channel, ts, text, blocks, thread_ts, mark=mark)
        self.calls.append(ChatCall(method, channel, text, blocks, ts=ts, thread_ts=thread_ts))
        return ts

    def _next_ts(self) -> str:
        self._counter += 1
        return f"1700000000.{self._counter * 100:06d}"

    def _maybe_fail(self, method: str) -> None:
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)

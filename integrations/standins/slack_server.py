"""A loopback stand-in for the Slack Web API, for tests and the offline demo. Stdlib only.

    with FakeSlack() as slack:
        client = WebClient(token="xoxb-test", base_url=slack.api_url)
        client.chat_postMessage(channel="C1", text="hi")
        assert slack.calls_to("chat.postMessage")[0].params["text"] == "hi"

It records every call (failed ones included), keeps the posted messages per channel (updated in
place by chat.update), and can be told to fail the next calls of a method with an HTTP status
(429 with ``Retry-After``, 500, …) or with an ``ok: false`` error such as ``not_in_channel``.
With a :class:`~integrations.standins.socket_mode_server.SocketModeServer` attached
(``FakeSlack(socket_mode=server)`` or :meth:`FakeSlack.attach_socket_mode`), ``apps.connections.open``
hands out that server's WebSocket URLs, so Bolt's ``SocketModeHandler`` runs against it too.
It does not import pytest, so demo scripts can use it too.
"""

from __future__ import annotations

import copy
import email.parser
import email.policy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

BOT_USER_ID = "U0DRAFTBOT"
BOT_ID = "B0DRAFTBOT"
TEAM_ID = "T0FAKETEAM"

if TYPE_CHECKING:
    from integrations.standins.socket_mode_server import SocketModeServer


@dataclass
class RecordedCall:
    """One request to the fake: the API method, its merged parameters, the auth header."""

    method: str
    params: dict[str, Any]
    authorization: str | None
    status: int = 200
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def token(self) -> str | None:
        """The bearer token sent in the Authorization header, or as a ``token`` parameter."""
        if self.authorization and self.authorization.startswith("Bearer "):
            return self.authorization[len("Bearer ") :]
        token = self.params.get("token")
        return str(token) if token else None


@dataclass
class _Failure:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]
    times: int


def _maybe_json(value: Any) -> Any:
    """Decode form values that hold JSON (``blocks``, ``attachments``, ``files``…)."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class FakeSlack:
    """A fake Slack Web API on ``127.0.0.1`` (a free port), served from a daemon thread.

    It starts when created; use it as a context manager or call :meth:`close`. ``on_call``, when
    set, is called with each :class:`RecordedCall` after it is answered (from the server thread).
    ``token``, when given, is the only bot token accepted (others get ``invalid_auth``).
    ``socket_mode`` is the Socket Mode server whose URLs ``apps.connections.open`` returns;
    ``app_token``, when given, is the only app-level token that method accepts. It always wants an
    app-level token (``xapp-…``): a bot token gets ``not_allowed_token_type``, like Slack answers.
    """

    def __init__(
        self,
        on_call: Callable[[RecordedCall], None] | None = None,
        token: str | None = None,
        socket_mode: SocketModeServer | None = None,
        app_token: str | None = None,
    ) -> None:
        self.on_call = on_call
        self.token = token
        self.socket_mode = socket_mode
        self.app_token = app_token
        self.calls: list[RecordedCall] = []
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.reactions: list[dict[str, Any]] = []
        self.files: dict[str, dict[str, Any]] = {}
        # conversations.info: channel ID → whether the bot is a member; others are "channel_not_found".
        self.channels: dict[str, bool] = {}
        # users.info: user ID → the user object Slack returns; add_user seeds it.
        self.users: dict[str, dict[str, Any]] = {}
        # views.open / views.update: view ID → the open modal as Slack returns it (with hash).
        self.views: dict[str, dict[str, Any]] = {}
        self.trigger_lifetime = 3.0  # seconds a trigger_id can open a modal, as on Slack
        self.homes: dict[str, dict[str, Any]] = {}  # views.publish: user ID → their App Home view
        self._failures: dict[str, list[_Failure]] = {}
        self._dm_channels: dict[str, str] = {}
        self._last_ts_micros = 0
        self._id_counter = 0
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.base_url}/api/"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-slack", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ test controls

    def attach_socket_mode(self, server: SocketModeServer | None, app_token: str | None = None) -> None:
        """Serve ``apps.connections.open`` from ``server`` (``None`` detaches it)."""
        with self._lock:
            self.socket_mode = server
            if app_token is not None:
                self.app_token = app_token

    def add_user(self, user_id: str, real_name: str, email: str | None = None) -> None:
        """A workspace member for ``users.info``; ``email=None`` answers as Slack does to an app
        without the ``users:read.email`` scope: a profile without an e-mail."""
        profile: dict[str, Any] = {"real_name": real_name, "display_name": real_name.split()[0]}
        if email is not None:
            profile["email"] = email
        with self._lock:
            self.users[user_id] = {
                "id": user_id,
                "team_id": TEAM_ID,
                "name": real_name.lower(),
                "profile": profile,
            }

    def fail_next(
        self,
        method: str,
        status: int = 429,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP ``status``.

        ``headers`` defaults to ``{"Retry-After": "1"}`` (only sent for a 429).
        """
        if headers is None:
            headers = {"Retry-After": "1"} if status == 429 else {}
        error = "ratelimited" if status == 429 else "internal_error"
        failure = _Failure(status, dict(headers), {"ok": False, "error": error}, times)
        with self._lock:
            self._failures.setdefault(method, []).append(failure)

    def error_next(self, method: str, error: str = "not_in_channel", times: int = 1, **extra: Any) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 200 ``{"ok": false, "error": …}``.

        ``extra`` fields go into the body, e.g. ``needed="chat:write"`` for ``missing_scope``.
        """
        failure = _Failure(200, {}, {"ok": False, "error": error, **extra}, times)
        with self._lock:
            self._failures.setdefault(method, []).append(failure)

    def reset(self) -> None:
        """Forget calls, messages and queued failures (the server keeps running)."""
        with self._lock:
            self.calls.clear()
            self.messages.clear()
            self.ephemerals.clear()
            self.reactions.clear()
            self.files.clear()
            self._failures.clear()

    # ------------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> list[RecordedCall]:
        """The recorded calls of one API method, oldest first."""
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, parent_ts: str) -> list[dict[str, Any]]:
        """The parent message followed by its replies, like conversations.replies."""
        with self._lock:
            return [
                m
                for m in self.messages.get(channel, [])
                if m["ts"] == parent_ts or m.get("thread_ts") == parent_ts
            ]

    def replies(self, channel: str, parent_ts: str) -> list[dict[str, Any]]:
        """Only the replies in a thread, oldest first."""
        return [m for m in self.thread(channel, parent_ts) if m["ts"] != parent_ts]

    def find_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        with self._lock:
            for message in self.messages.get(channel, []):
                if message["ts"] == ts:
                    return message
        return None

    # ------------------------------------------------------------------ request handling

    def _next_ts(self) -> str:
        """The wall clock in microseconds, as Slack's ``ts``, each one later than the last."""
        micros = max(time.time_ns() // 1000, self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        self._id_counter += 1
        return f"{prefix}0FAKE{self._id_counter:05d}"

    def _channel_id(self, channel: str) -> str:
        """A user ID as channel means the DM with that user, as in chat.postMessage."""
        if channel.startswith(("U", "W")):
            return self._dm_for(channel)
        return channel

    def _dm_for(self, users: str) -> str:
        if users not in self._dm_channels:
            self._dm_channels[users] = self._next_id("D" if "," not in users else "G")
        return self._dm_channels[users]

    def handle(
        self, method: str, params: dict[str, Any], authorization: str | None
    ) -> tuple[int, dict, dict]:
        """Answer one API call: (HTTP status, extra headers, JSON body). Also records it."""
        with self._lock:
            call = RecordedCall(method, params, authorization)
            self.calls.append(call)
            queue = self._failures.get(method)
            if queue:
                failure = queue[0]
                failure.times -= 1
                if failure.times <= 0:
                    queue.pop(0)
                status, headers, body = failure.status, failure.headers, failure.body
            else:
                status, headers, body = 200, {}, self._dispatch(method, params, call)
            call.status, call.response = status, body
        if self.on_call is not None:
            self.on_call(call)
        return status, headers, body

    def _dispatch(self, method: str, params: dict[str, Any], call: RecordedCall) -> dict[str, Any]:
        if method == "apps.connections.open":  # the one method that takes the app-level token
            return self._apps_connections_open(call)
        if self.token is not None and method != "api.test":
            if call.token is None:
                return {"ok": False, "error": "not_authed"}
            if call.token != self.token:
                return {"ok": False, "error": "invalid_auth"}
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        return handler(params)

    # ------------------------------------------------------------------ API methods

    def _m_api_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "args": params}

    def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake-team.slack.com/",
            "team": "Fake Team",
            "user": "draftdesk",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, call: RecordedCall) -> dict[str, Any]:
        if call.token is None:
            return {"ok": False, "error": "not_authed"}
        if not call.token.startswith("xapp-"):
            return {"ok": False, "error": "not_allowed_token_type"}
        if self.app_token is not None and call.token != self.app_token:
            return {"ok": False, "error": "invalid_auth"}
        if self.socket_mode is None:
            # The fake's own error: no SocketModeServer is attached to hand out URLs.
            return {"ok": False, "error": "socket_mode_not_enabled"}
        return {"ok": True, "url": self.socket_mode.issue_url()}

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("text") and not params.get("blocks") and not params.get("attachments"):
            return {"ok": False, "error": "no_text"}
        metadata = params.get("metadata")
        if metadata is not None and not _valid_metadata(metadata):
            return {"ok": False, "error": "invalid_metadata_format"}
        channel = self._channel_id(str(params["channel"]))
        message: dict[str, Any] = {
            "type": "message",
            "ts": self._next_ts(),
            "thread_ts": params.get("thread_ts"),
            "text": params.get("text", ""),
            "blocks": params.get("blocks", []),
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
        }
        if metadata is not None:
            message["metadata"] = {
                "event_type": metadata["event_type"],
                "event_payload": metadata["event_payload"],
            }
        self.messages.setdefault(channel, []).append(message)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": dict(message)}

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel", ""))
        if channel not in self.messages:
            return {"ok": False, "error": "channel_not_found"}
        message = self.find_message(channel, str(params.get("ts", "")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        for key in ("text", "blocks"):
            if key in params:
                message[key] = params[key]
        message["edited"] = {"user": BOT_USER_ID, "ts": self._next_ts()}
        return {"ok": True, "channel": channel, "ts": message["ts"], "text": message["text"]}

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("user"):
            return {"ok": False, "error": "user_not_found"}
        ephemeral = {**params, "message_ts": self._next_ts()}
        self.ephemerals.append(ephemeral)
        return {"ok": True, "message_ts": ephemeral["message_ts"]}

    def _m_conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("channel"):
            return {"ok": True, "channel": {"id": params["channel"]}}
        users = str(params.get("users", ""))
        if not users:
            return {"ok": False, "error": "users_list_not_supplied"}
        return {"ok": True, "channel": {"id": self._dm_for(users)}}

    def _m_reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        reaction = {k: params.get(k) for k in ("channel", "timestamp", "name")}
        if not reaction["name"]:
            return {"ok": False, "error": "invalid_name"}
        if reaction in self.reactions:
            return {"ok": False, "error": "already_reacted"}
        self.reactions.append(reaction)
        return {"ok": True}

    def _m_users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(params.get("user") or ""))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": json.loads(json.dumps(user))}

    def _m_views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger = str(params.get("trigger_id") or "")
        if not trigger:
            return {"ok": False, "error": "invalid_arguments"}
        issued = trigger.split(".", 1)[0]
        if issued.replace("-", "").isdigit() and time.time() - float(issued) > self.trigger_lifetime:
            return {"ok": False, "error": "expired_trigger_id"}
        return self._save_view(self._next_id("V"), params.get("view"))

    def _m_views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view_id = str(params.get("view_id") or "")
        current = self.views.get(view_id)
        if current is None:
            return {"ok": False, "error": "not_found"}
        if params.get("hash") and params["hash"] != current["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        return self._save_view(view_id, params.get("view"))

    def _m_views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user, view = str(params.get("user_id") or ""), params.get("view")
        if not user or not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        self.homes[user] = {**view, "id": self._next_id("V")}
        return {"ok": True, "view": json.loads(json.dumps(self.homes[user]))}

    def _save_view(self, view_id: str, view: Any) -> dict[str, Any]:
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("title"):
            return {"ok": False, "error": "invalid_arguments"}
        if len(str(view.get("private_metadata") or "")) > 3000 or any(
            len(str((b.get("element") or {}).get("initial_value") or "")) > 3000
            for b in view.get("blocks") or []
        ):  # Slack's limits on private_metadata and on a text input's value
            return {"ok": False, "error": "invalid_arguments"}
        saved = {**view, "id": view_id, "hash": f"{time.time_ns()}.{self._next_id('H')}"}
        self.views[view_id] = saved
        return {"ok": True, "view": json.loads(json.dumps(saved))}

    def _m_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """The parent, then its replies oldest first; ``metadata`` only with ``include_all_metadata``."""
        channel, ts = str(params.get("channel") or ""), str(params.get("ts") or "")
        if channel not in self.messages:
            return {"ok": False, "error": "channel_not_found"}
        if not ts or self.find_message(channel, ts) is None:
            return {"ok": False, "error": "thread_not_found"}
        messages = sorted(self.thread(channel, ts), key=lambda m: float(m["ts"]))
        return self._page(messages, params, default_limit=1000)

    def _m_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages (thread parents, not replies), newest first, within oldest/latest."""
        channel = str(params.get("channel") or "")
        if channel not in self.messages:
            return {"ok": False, "error": "channel_not_found"}
        oldest, latest = float(params.get("oldest") or 0), float(params.get("latest") or time.time() + 1)
        inclusive = _truthy(params.get("inclusive"))
        messages = [
            m
            for m in self.messages[channel]
            if m.get("thread_ts") in (None, m["ts"])
            and (oldest <= float(m["ts"]) <= latest if inclusive else oldest < float(m["ts"]) < latest)
        ]
        return self._page(sorted(messages, key=lambda m: -float(m["ts"])), params, default_limit=100)

    def _page(
        self, messages: list[dict[str, Any]], params: dict[str, Any], default_limit: int
    ) -> dict[str, Any]:
        """One page of a cursor-paginated read, as Slack answers it (the cursor is an offset here)."""
        start = int(params.get("cursor") or 0)
        limit = max(1, min(999, int(params.get("limit") or default_limit)))
        page = messages[start : start + limit]
        with_metadata = _truthy(params.get("include_all_metadata"))
        shown = [{k: v for k, v in m.items() if k != "metadata" or with_metadata} for m in page]
        more = start + limit < len(messages)
        return {
            "ok": True,
            "messages": copy.deepcopy(shown),
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _m_conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": {"id": channel, "is_member": self.channels[channel]}}

    def _m_files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = self._next_id("F")
        self.files[file_id] = {"id": file_id, "filename": params.get("filename"), "data": b""}
        return {"ok": True, "file_id": file_id, "upload_url": f"{self.base_url}/upload/{file_id}"}

    def _m_files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        done = []
        for item in params.get("files") or []:
            stored = self.files.get(item.get("id"))
            if stored is None:
                return {"ok": False, "error": "file_not_found"}
            stored.update(
                title=item.get("title"),
                channel=params.get("channel_id"),
                thread_ts=params.get("thread_ts"),
                initial_comment=params.get("initial_comment"),
            )
            done.append({"id": stored["id"], "title": stored["title"], "name": stored["filename"]})
        return {"ok": True, "files": done}

    def _store_upload(self, file_id: str, data: bytes) -> bool:
        with self._lock:
            if file_id not in self.files:
                return False
            self.files[file_id]["data"] = data
            return True

    # ------------------------------------------------------------------ HTTP plumbing

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "FakeSlack/1.0"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if parts.path.startswith("/upload/"):
                    ok = fake._store_upload(parts.path[len("/upload/") :], raw)
                    self._reply(200 if ok else 404, {}, b"OK" if ok else b"not found", "text/plain")
                    return
                if not parts.path.startswith("/api/"):
                    self._reply(404, {}, b"not found", "text/plain")
                    return
                method = parts.path[len("/api/") :]
                params: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
                params.update(_parse_body(self.headers.get("Content-Type", ""), raw))
                params = {k: _maybe_json(v) for k, v in params.items()}
                status, headers, body = fake.handle(method, params, self.headers.get("Authorization"))
                self._reply(status, headers, json.dumps(body).encode(), "application/json; charset=utf-8")

            def _reply(self, status: int, headers: dict[str, str], body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _truthy(value: Any) -> bool:
    """A boolean parameter as Slack reads it: true, "true" or "1"."""
    return value is True or str(value).lower() in ("1", "true")


def _valid_metadata(metadata: Any) -> bool:
    """Slack's shape: ``{"event_type": str, "event_payload": {str: str | number | bool}}``."""
    if not isinstance(metadata, dict) or not isinstance(metadata.get("event_type"), str):
        return False
    payload = metadata.get("event_payload")
    values = payload.values() if isinstance(payload, dict) else [object()]
    return all(isinstance(v, str | int | float | bool) for v in values)


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    """Parameters from a JSON, form-encoded or multipart body."""
    if not raw:
        return {}
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        try:
            body = json.loads(raw.decode("utf-8"))
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}
    if kind == "multipart/form-data":
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
        )
        params: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not name:
                continue
            payload = part.get_payload(decode=True) or b""
            try:
                params[str(name)] = payload.decode("utf-8")
            except UnicodeDecodeError:
                params[str(name)] = payload
        return params
    return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))

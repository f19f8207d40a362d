"""A loopback stand-in for Slack's Socket Mode WebSocket endpoint, for tests and the offline demo.

    with SocketModeServer() as socket_mode, FakeSlack(socket_mode=socket_mode) as slack:
        handler = SocketModeHandler(bolt_app, "xapp-1-test")  # apps.connections.open → socket_mode.url
        handler.connect()
        socket_mode.wait_for_connection()
        envelope_id = socket_mode.send_envelope("interactive", block_actions_payload)
        assert socket_mode.wait_for_ack(envelope_id) == {"envelope_id": envelope_id}

It speaks RFC 6455 over plain TCP on ``127.0.0.1`` (slack_sdk's builtin client uses a plain socket
for any port other than 443, so ``ws://127.0.0.1:PORT/link/?ticket=…`` works): the opening
handshake with ``Sec-WebSocket-Accept``, masked client frames, unmasked server frames, fragmented
messages, ping/pong and the closing handshake. Like Slack it greets each connection with a
``hello``, pushes envelopes (``events_api``, ``interactive``, ``slash_commands``), records the
client's acknowledgements, and can ask clients to reconnect (``disconnect``) or drop them.
Stdlib only; it does not import pytest.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import secrets
import socket
import struct
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ENVELOPE_TYPES = ("events_api", "interactive", "slash_commands")

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009

_MAX_HANDSHAKE_BYTES = 16 * 1024
_MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def websocket_accept(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1((key.strip() + WEBSOCKET_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def encode_frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One WebSocket frame. Servers send unmasked frames; pass a 4-byte ``mask`` to act as a client."""
    head = bytes([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    length = len(payload)
    if length <= 125:
        head += bytes([mask_bit | length])
    elif length <= 0xFFFF:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if mask is None:
        return head + payload
    return head + mask + _apply_mask(payload, mask)


def _apply_mask(data: bytes, mask: bytes) -> bytes:
    if not data:
        return b""
    repeated = (mask * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(data), "big")


class _ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Connection:
    """One accepted WebSocket connection, read by its own daemon thread."""

    def __init__(self, server: SocketModeServer, sock: socket.socket, number: int, ticket: str) -> None:
        self.server = server
        self.sock = sock
        self.number = number
        self.ticket = ticket
        self.open = True
        self.close_sent = False
        self.close_code: int | None = None  # the code the client sent, or ours if we closed first
        self.close_reason = ""
        self.closed_by: str | None = None  # "client", "server" or "eof"
        self._buffer = b""
        self._send_lock = threading.Lock()
        self.thread = threading.Thread(target=self._read_loop, name=f"fake-socket-mode-{number}", daemon=True)

    # ------------------------------------------------------------------ sending

    def send_frame(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            if not self.open or self.close_sent:
                raise ConnectionError(f"connection {self.number} is closed")
            try:
                self.sock.sendall(encode_frame(opcode, payload))
            except OSError as exc:
                self._mark_closed("eof")
                raise ConnectionError(f"connection {self.number} is closed: {exc}") from exc

    def send_json(self, message: dict[str, Any]) -> None:
        self.send_frame(OP_TEXT, json.dumps(message).encode("utf-8"))

    def close(self, code: int = CLOSE_GOING_AWAY, reason: str = "") -> None:
        """Start the closing handshake, then drop the TCP connection."""
        with self._send_lock:
            if self.open and not self.close_sent:
                self.close_sent = True
                self.close_code, self.close_reason = code, reason
                try:
                    payload = struct.pack("!H", code) + reason.encode("utf-8")[:123]
                    self.sock.sendall(encode_frame(OP_CLOSE, payload))
                except OSError:
                    pass
        self._mark_closed("server")

    def _mark_closed(self, by: str) -> None:
        with self.server._cond:
            if not self.open:
                return
            self.open = False
            self.closed_by = by
            self.server._cond.notify_all()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    # ------------------------------------------------------------------ receiving

    def _read(self, n: int) -> bytes:
        while len(self._buffer) < n:
            chunk = self.sock.recv(max(4096, n - len(self._buffer)))
            if not chunk:
                raise EOFError
            self._buffer += chunk
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def _read_frame(self) -> tuple[bool, int, bytes]:
        b1, b2 = self._read(2)
        fin, opcode = bool(b1 & 0x80), b1 & 0x0F
        if b1 & 0x70:
            raise _ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension")
        if not b2 & 0x80:
            raise _ProtocolError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        length = b2 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read(8))
        if opcode >= 0x8 and (not fin or length > 125):
            raise _ProtocolError(CLOSE_PROTOCOL_ERROR, "control frames must be whole and short")
        if length > _MAX_MESSAGE_BYTES:
            raise _ProtocolError(CLOSE_TOO_BIG, "message too big")
        mask = self._read(4)
        return fin, opcode, _apply_mask(self._read(length), mask)

    def _read_loop(self) -> None:
        message_opcode: int | None = None
        fragments: list[bytes] = []
        try:
            while self.open:
                fin, opcode, payload = self._read_frame()
                if opcode == OP_PING:
                    self.send_frame(OP_PONG, payload)
                    self.server._record_ping(self, payload)
                elif opcode == OP_PONG:
                    self.server._record_pong(self, payload)
                elif opcode == OP_CLOSE:
                    self._on_close_frame(payload)
                    return
                elif opcode in (OP_TEXT, OP_BINARY):
                    if message_opcode is not None:
                        raise _ProtocolError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
                    message_opcode, fragments = opcode, [payload]
                elif opcode == OP_CONTINUATION:
                    if message_opcode is None:
                        raise _ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation without a message")
                    fragments.append(payload)
                else:
                    raise _ProtocolError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
                if opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION) and fin:
                    data, kind = b"".join(fragments), message_opcode
                    message_opcode, fragments = None, []
                    if kind == OP_TEXT:
                        try:
                            text = data.decode("utf-8")
                        except UnicodeDecodeError as exc:
                            raise _ProtocolError(CLOSE_INVALID_DATA, "text frame is not UTF-8") from exc
                        self.server._record_text(self, text)
        except _ProtocolError as exc:
            self.close(exc.code, exc.reason)
        except (EOFError, ConnectionError, OSError, ValueError):
            self._mark_closed("eof")

    def _on_close_frame(self, payload: bytes) -> None:
        code, reason = CLOSE_NORMAL, ""
        if len(payload) >= 2:
            (code,) = struct.unpack("!H", payload[:2])
            reason = payload[2:].decode("utf-8", "replace")
        with self._send_lock:
            echo = self.open and not self.close_sent
            if echo:
                self.close_sent = True
                self.close_code, self.close_reason = code, reason
                with contextlib.suppress(OSError):
                    self.sock.sendall(encode_frame(OP_CLOSE, payload[:2]))
        self._mark_closed("client" if echo else "server")


class SocketModeServer:
    """A fake Socket Mode endpoint on ``127.0.0.1`` (a free port), served from daemon threads.

    It starts when created; use it as a context manager or call :meth:`close`. Give ``url`` (or a
    fresh :meth:`issue_url`) to the client, usually through ``FakeSlack(socket_mode=server)``'s
    ``apps.connections.open``. Only issued tickets are accepted (others get HTTP 401).
    """

    def __init__(self, app_id: str = "A0DEMO", host: str = "127.0.0.1") -> None:
        self.app_id = app_id
        self.host = host
        self.messages: list[dict[str, Any]] = []  # every JSON message clients sent, oldest first
        self.sent: list[dict[str, Any]] = []  # every JSON message sent to clients, oldest first
        self.handshake_failures: list[tuple[int, str]] = []  # (HTTP status, reason)
        self.pings: list[bytes] = []  # payloads of client pings (each answered with a pong)
        self.pongs: list[bytes] = []  # payloads of client pongs (answers to :meth:`ping`)
        self.connections_total = 0  # successful handshakes so far
        self._acks: dict[str, dict[str, Any]] = {}
        self._connections: list[_Connection] = []
        self._tickets: set[str] = set()
        self._numbers = itertools.count(1)
        self._cond = threading.Condition(threading.RLock())
        self._closed = threading.Event()
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._url = self.issue_url()
        self._thread = threading.Thread(target=self._accept_loop, name="fake-socket-mode", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close every connection (code 1001), stop listening and release the port."""
        self._closed.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for connection in self._snapshot():
            connection.close(CLOSE_GOING_AWAY, "server shutting down")
        for connection in self._snapshot():
            connection.thread.join(timeout=5)

    def __enter__(self) -> SocketModeServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ URLs

    @property
    def url(self) -> str:
        """A connection URL (``ws://127.0.0.1:PORT/link/?ticket=…&app_id=…``), issued at start."""
        return self._url

    def issue_url(self) -> str:
        """A URL with a new ticket, as each ``apps.connections.open`` call returns."""
        ticket = secrets.token_hex(16)
        with self._cond:
            self._tickets.add(ticket)
        return f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    # ------------------------------------------------------------------ pushing to clients

    def send_envelope(
        self,
        type: str,
        payload: dict[str, Any],
        accepts_response_payload: bool = False,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> str:
        """Push one envelope to the newest open connection; returns its ``envelope_id``.

        ``events_api`` envelopes carry ``retry_attempt``/``retry_reason`` (0 and "" by default),
        like Slack's. Raises ``ConnectionError`` when no client is connected.
        """
        if type not in ENVELOPE_TYPES:
            raise ValueError(f"type must be one of {ENVELOPE_TYPES}, got {type!r}")
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if type == "events_api":
            envelope["retry_attempt"] = 0 if retry_attempt is None else retry_attempt
            envelope["retry_reason"] = "" if retry_reason is None else retry_reason
        self.send_message(envelope)
        return envelope_id

    def send_message(self, message: dict[str, Any]) -> None:
        """Send any JSON message to the newest open connection."""
        open_connections = [c for c in self._snapshot() if c.open]
        if not open_connections:
            raise ConnectionError("no Socket Mode client is connected")
        connection = open_connections[-1]
        with self._cond:
            self.sent.append(message)
        connection.send_json(message)

    def send_disconnect(self, reason: str = "refresh_requested") -> int:
        """Ask every open connection to reconnect, as Slack does before it recycles a connection.

        ``reason`` is ``"warning"``, ``"refresh_requested"`` or ``"link_disabled"``. Returns the
        number of connections told.
        """
        message = {"type": "disconnect", "reason": reason, "debug_info": self._debug_info()}
        told = 0
        for connection in self._snapshot():
            if connection.open:
                try:
                    connection.send_json(message)
                except ConnectionError:
                    continue
                told += 1
                with self._cond:
                    self.sent.append(message)
        return told

    def drop_connections(self, code: int = CLOSE_GOING_AWAY, reason: str = "") -> int:
        """Close every open connection with a close frame; returns how many were closed."""
        dropped = 0
        for connection in self._snapshot():
            if connection.open:
                connection.close(code, reason)
                dropped += 1
        return dropped

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping to every open connection; their pongs land in :attr:`pongs`."""
        for connection in self._snapshot():
            if connection.open:
                with contextlib.suppress(ConnectionError):
                    connection.send_frame(OP_PING, payload)

    # ------------------------------------------------------------------ inspection

    @property
    def open_connections(self) -> int:
        with self._cond:
            return sum(1 for c in self._connections if c.open)

    @property
    def acks(self) -> dict[str, dict[str, Any]]:
        """Acknowledgements by ``envelope_id``: ``{"envelope_id": …}``, plus ``payload`` if any."""
        with self._cond:
            return dict(self._acks)

    def wait_for_connection(self, timeout: float = 5.0, count: int = 1) -> None:
        """Wait until ``count`` handshakes have succeeded in all and a connection is open."""
        if not self._wait(lambda: self.connections_total >= count and self.open_connections > 0, timeout):
            raise TimeoutError(
                f"no Socket Mode connection within {timeout} s "
                f"(handshakes: {self.connections_total}, failures: {self.handshake_failures})"
            )

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The client's acknowledgement of one envelope; ``TimeoutError`` if none comes in time."""
        if not self._wait(lambda: envelope_id in self._acks, timeout):
            raise TimeoutError(f"envelope {envelope_id} not acknowledged within {timeout} s")
        with self._cond:
            return self._acks[envelope_id]

    def wait_for_disconnect(self, timeout: float = 5.0) -> None:
        """Wait until no connection is open."""
        if not self._wait(lambda: self.open_connections == 0, timeout):
            raise TimeoutError(f"{self.open_connections} connection(s) still open after {timeout} s")

    # ------------------------------------------------------------------ internals

    def _wait(self, condition: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def _snapshot(self) -> list[_Connection]:
        with self._cond:
            return list(self._connections)

    def _debug_info(self) -> dict[str, Any]:
        return {"host": f"applink-fake-{self.port}", "build_number": 1, "approximate_connection_time": 18060}

    def _record_text(self, connection: _Connection, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = {"_raw": text}
        if not isinstance(message, dict):
            message = {"_raw": text}
        with self._cond:
            self.messages.append(message)
            envelope_id = message.get("envelope_id")
            if isinstance(envelope_id, str) and envelope_id not in self._acks:
                self._acks[envelope_id] = message
            self._cond.notify_all()

    def _record_ping(self, connection: _Connection, payload: bytes) -> None:
        with self._cond:
            self.pings.append(payload)
            self._cond.notify_all()

    def _record_pong(self, connection: _Connection, payload: bytes) -> None:
        with self._cond:
            self.pongs.append(payload)
            self._cond.notify_all()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(
                target=self._handshake, args=(sock,), name="fake-socket-mode-handshake", daemon=True
            ).start()

    def _handshake(self, sock: socket.socket) -> None:
        sock.settimeout(5)
        try:
            request, leftover = self._read_request(sock)
            status, reason, key, ticket = self._check_request(request)
            if status != 101:
                with self._cond:
                    self.handshake_failures.append((status, reason))
                    self._cond.notify_all()
                body = json.dumps({"ok": False, "error": reason}).encode()
                sock.sendall(
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
                    + body
                )
                sock.close()
                return
            sock.sendall(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Accept: {websocket_accept(key)}\r\n\r\n"
                ).encode("latin-1")
            )
            sock.settimeout(None)
        except (OSError, ValueError, UnicodeDecodeError):
            sock.close()
            return
        with self._cond:
            if self._closed.is_set():
                sock.close()
                return
            number = next(self._numbers)
            hello = {
                "type": "hello",
                "num_connections": 1 + sum(1 for c in self._connections if c.open),
                "debug_info": self._debug_info(),
                "connection_info": {"app_id": self.app_id},
            }
        connection = _Connection(self, sock, number, ticket)
        connection._buffer = leftover
        try:
            connection.send_json(hello)  # first, before any envelope can be pushed to it
        except ConnectionError:
            return
        with self._cond:
            self.connections_total += 1
            self._connections.append(connection)
            self.sent.append(hello)
            self._cond.notify_all()
        connection.thread.start()

    @staticmethod
    def _read_request(sock: socket.socket) -> tuple[bytes, bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise ValueError("connection closed during the handshake")
            data += chunk
            if len(data) > _MAX_HANDSHAKE_BYTES:
                raise ValueError("handshake request too large")
        head, _, leftover = data.partition(b"\r\n\r\n")
        return head, leftover

    def _check_request(self, head: bytes) -> tuple[int, str, str, str]:
        """(status, reason, Sec-WebSocket-Key, ticket); status 101 when the upgrade may go ahead."""
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[0] != "GET" or not parts[2].startswith("HTTP/1.1"):
            return 400, "Bad Request", "", ""
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        target = urlsplit(parts[1])
        if target.path.rstrip("/") != "/link":
            return 404, "Not Found", "", ""
        ticket = (parse_qs(target.query).get("ticket") or [""])[0]
        with self._cond:
            known = ticket in self._tickets
        if not known:
            return 401, "Unauthorized", "", ticket
        key = headers.get("sec-websocket-key", "")
        upgrade_ok = headers.get("upgrade", "").lower() == "websocket" and "upgrade" in {
            token.strip().lower() for token in headers.get("connection", "").split(",")
        }
        try:
            key_ok = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:
            key_ok = False
        if not upgrade_ok or not key_ok or headers.get("sec-websocket-version") != "13":
            return 400, "Bad Request", "", ticket
        return 101, "Switching Protocols", key, ticket

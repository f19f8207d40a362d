"""One web server for HTTP mode: Slack events, the Zendesk webhook, the health check and metrics.

Routes: POST /slack/events (Bolt: events, interactivity, slash commands), POST /zendesk/webhook,
GET /healthz (JSON; 503 when degraded), GET /metrics (Prometheus text format). Served by
waitress: a pool of request threads behind one event loop that accepts connections and reads
whole requests before a thread takes them, with a real listen backlog, so a burst of clicks or
webhooks queues instead of being reset. Every handler answers in milliseconds; slow work happens
after the answer, in `bot.slack.listeners.AfterAck` or the worker.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier
from waitress import create_server, wasyncore
from waitress.trigger import trigger

from bot.drafting.intake import WebhookResponse
from integrations.slack_payloads import payload_kind, payload_problem

log = logging.getLogger(__name__)

SLACK_PATH = "/slack/events"
ZENDESK_PATH = "/zendesk/webhook"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"

WebhookHandler = Callable[[bytes, dict[str, str]], WebhookResponse]
MetricsRenderer = Callable[[], tuple[bytes, str]]  # (body, content type)


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    return headers


def _json(start_response: Callable, status: int, body: dict) -> Iterable[bytes]:
    reasons = {
        200: "OK",
        400: "Bad Request",
        401: "Unauthorized",
        404: "Not Found",
        405: "Method Not Allowed",
        411: "Length Required",
        413: "Payload Too Large",
        503: "Service Unavailable",
    }
    payload = json.dumps(body).encode()
    start_response(
        f"{status} {reasons.get(status, 'Error')}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
    )
    return [payload]


class DraftdeskWSGI:
    def __init__(
        self,
        slack_app: App | None,
        webhook: WebhookHandler | None,
        health: Callable[[], dict],
        max_body_bytes: int,
        slack_signing_secret: str | None = None,
        metrics: MetricsRenderer | None = None,
    ) -> None:
        if slack_app is not None and not slack_signing_secret:
            raise ValueError("Slack over HTTP needs the signing secret (SLACK_SIGNING_SECRET)")
        self.slack = SlackRequestHandler(slack_app, path=SLACK_PATH) if slack_app else None
        self.slack_verifier = SignatureVerifier(slack_signing_secret) if slack_signing_secret else None
        self.webhook = webhook
        self.health = health
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == HEALTH_PATH:
            report = self.health()
            return _json(start_response, 503 if report.get("ok") is False else 200, report)
        if path == METRICS_PATH and self.metrics is not None:
            body, content_type = self.metrics()
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
            return [body]
        if (
            path not in (SLACK_PATH, ZENDESK_PATH)
            or (path == SLACK_PATH and self.slack is None)
            or (path == ZENDESK_PATH and self.webhook is None)
        ):
            return _json(start_response, 404, {"error": "not found"})
        if method != "POST":
            return _json(start_response, 405, {"error": "use POST"})
        raw_length = (environ.get("CONTENT_LENGTH") or "0").strip()
        if not (raw_length.isascii() and raw_length.isdigit()) or len(raw_length) > 12:
            return _json(start_response, 400, {"error": "Content-Length must be a number of bytes"})
        length = int(raw_length)
        if length > self.max_body_bytes:
            return _json(start_response, 413, {"error": f"body over {self.max_body_bytes} bytes"})
        body = environ["wsgi.input"].read(length) if length else b""
        headers = _headers(environ)
        if path == SLACK_PATH:
            return self._slack(environ, body, headers, start_response)
        assert self.webhook is not None
        response = self.webhook(body, headers)
        return _json(start_response, response.status, response.body)

    def _slack(
        self, environ: dict[str, Any], body: bytes, headers: dict[str, str], start_response: Callable
    ) -> Iterable[bytes]:
        """Bolt gets only signed requests whose body it can parse: anyone can send the others."""
        assert self.slack is not None and self.slack_verifier is not None
        if not slack_signature_valid(self.slack_verifier, body, headers):
            log.warning("rejected a Slack request: missing, wrong or stale signature")
            return _json(start_response, 401, {"error": "invalid Slack signature"})
        problem = slack_body_problem(body, environ.get("CONTENT_TYPE"))
        if problem:
            log.warning("rejected a signed Slack request: %s", problem)
            return _json(start_response, 400, {"error": problem})
        payload = parse_body(body.decode("utf-8"), environ.get("CONTENT_TYPE"))
        problem = payload_problem(payload)
        if problem:
            # An event answered otherwise would come again (Slack retries it); a click or a
            # submission answered 400 shows the agent it did not go through.
            log.warning("ignored a signed Slack %s: %s", payload_kind(payload), problem)
            if payload.get("type") == "event_callback":
                return _json(start_response, 200, {"ignored": problem})
            return _json(start_response, 400, {"error": problem})
        environ = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        return self.slack(environ, start_response)


def slack_signature_valid(verifier: SignatureVerifier, body: bytes, headers: Mapping[str, str]) -> bool:
    """slack_sdk's check, made safe for any input: it raises on a non-numeric timestamp or a body
    that is not UTF-8, and Slack signs neither."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) or not signature:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return verifier.is_valid(body, timestamp, signature)


def slack_body_problem(body: bytes, content_type: str | None) -> str | None:
    """Why Bolt could not read ``body`` (parsed with Bolt's own parser), or None if it can."""
    try:
        text = body.decode("utf-8")
        parsed = parse_body(text, content_type)
    except UnicodeDecodeError:
        return "body is not UTF-8"
    except (ValueError, RecursionError):
        return "body is not the JSON or form data Slack sends"
    if not isinstance(parsed, dict):
        return "body is not a JSON object"
    return None


class WebServer:
    """``app`` served by waitress on ``host``:``port`` (0: any free port) from a background thread.

    ``threads`` run the app; ``backlog`` connections may wait to be accepted; a body over
    ``max_body_bytes`` is refused (413) before it is read whole.
    """

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        host: str,
        port: int,
        threads: int = 8,
        backlog: int = 1024,
        max_body_bytes: int | None = None,
    ) -> None:
        self._map: dict[int, Any] = {}  # waitress's socket map: its event loop runs while not empty
        self._wake = trigger(self._map)  # runs a function in the loop's thread
        limits = {} if max_body_bytes is None else {"max_request_body_size": max_body_bytes}
        try:
            self.server: Any = create_server(
                app,
                map=self._map,
                host=host,
                port=port,
                threads=threads,
                backlog=backlog,
                ident="draftdesk",
                **limits,
            )
        except BaseException:  # a port in use, say: the caller gets the error, not our open pipe
            wasyncore.close_all(self._map)
            raise
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        listening = getattr(self.server, "effective_listen", None)  # several sockets: "localhost"
        return int(listening[0][1] if listening else self.server.effective_port)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.server.run, name="web", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Lets the requests in progress finish, then closes every socket and ends the loop."""
        self.server.task_dispatcher.shutdown(timeout=10)
        if self.thread is None:
            wasyncore.close_all(self._map)
            return
        # The loop's own thread closes the sockets (pull_trigger runs the function there); the
        # loop ends once its socket map is empty.
        self._wake.pull_trigger(lambda: wasyncore.close_all(self._map))
        self.thread.join(timeout=10)
        self.thread = None

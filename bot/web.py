"""One web server for HTTP mode: Slack events, the Zendesk webhook and a health check.

Routes: POST /slack/events (Bolt: events, interactivity, slash commands), POST /zendesk/webhook,
GET /healthz. A threaded stdlib WSGI server is enough: every handler answers in milliseconds,
and slow work happens after the answer, in Bolt's listener threads or the worker.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.intake import WebhookResponse

log = logging.getLogger(__name__)

SLACK_PATH = "/slack/events"
ZENDESK_PATH = "/zendesk/webhook"
HEALTH_PATH = "/healthz"

WebhookHandler = Callable[[bytes, dict[str, str]], WebhookResponse]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


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
    ) -> None:
        self.slack = SlackRequestHandler(slack_app, path=SLACK_PATH) if slack_app else None
        self.webhook = webhook
        self.health = health
        self.max_body_bytes = max_body_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == HEALTH_PATH:
            return _json(start_response, 200, self.health())
        if (
            path not in (SLACK_PATH, ZENDESK_PATH)
            or (path == SLACK_PATH and self.slack is None)
            or (path == ZENDESK_PATH and self.webhook is None)
        ):
            return _json(start_response, 404, {"error": "not found"})
        if method != "POST":
            return _json(start_response, 405, {"error": "use POST"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _json(start_response, 411, {"error": "invalid Content-Length"})
        if length > self.max_body_bytes:
            return _json(start_response, 413, {"error": f"body over {self.max_body_bytes} bytes"})
        if path == SLACK_PATH:
            assert self.slack is not None
            return self.slack(environ, start_response)
        body = environ["wsgi.input"].read(length) if length else b""
        assert self.webhook is not None
        response = self.webhook(body, _headers(environ))
        return _json(start_response, response.status, response.body)


class WebServer:
    def __init__(self, app: DraftdeskWSGI, host: str, port: int) -> None:
        self.httpd = make_server(
            host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> None:
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="web", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:  # shutdown() waits for serve_forever, so only when it runs
            self.httpd.shutdown()
            self.thread.join(timeout=10)
            self.thread = None
        self.httpd.server_close()

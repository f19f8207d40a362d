"""``draftdesk serve-models``: the local engine behind an OpenAI-compatible HTTP API.

Run it on the GPU box; the bot, anywhere, points ``backend = "openai"`` models at it. Endpoints:
``GET /v1/models`` (with ``max_model_len``), ``POST /v1/completions``, ``POST
/v1/chat/completions``, ``POST /tokenize`` (vLLM's shape: ``count``, ``max_model_len``,
``tokens``) and ``GET /health``. Every endpoint but ``/health`` wants ``Authorization: Bearer
<key>``. Concurrent requests are gathered into one engine batch (``[engine] max_wait_seconds``).

Request settings left out fall back to the model's ``[[models]]`` settings (OpenAI's own defaults,
e.g. 16 tokens, would not suit drafts). Extensions known from vLLM: ``repetition_penalty``,
``ignore_eos``. Not supported (HTTP 400): ``stream``, ``n`` > 1, ``echo``, ``logprobs``,
``best_of``, token-id prompts. Chat messages are rendered into draftdesk's transcript format
(system text, ``Customer:`` for user turns, ``Agent:`` for assistant turns), which is what the
adapters were trained on.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.prompt import AGENT, CUSTOMER, transcript, turn
from models.batching import RequestBatcher
from models.spec import DEFAULT_API_KEY_ENV, DraftRequest, EngineSettings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8_000_000
REQUEST_TIMEOUT_SECONDS = 600.0  # a request waits this long for its batch at most
NO_TEXT = "the model produced no text"
# Request parameters served only with these values (anything else is HTTP 400).
_UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "stream": (None, False),
    "n": (None, 1),
    "echo": (None, False),
    "logprobs": (None, 0),
    "best_of": (None, 1),
}


class ApiError(Exception):
    """An error answer in OpenAI's shape: ``{"error": {"message", "type", "code"}}``."""

    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.status}}


def render_chat(messages: Any) -> str:
    """Chat messages as draftdesk's plain transcript, ending with ``Agent:`` for the model to continue."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    roles = {"user": CUSTOMER, "assistant": AGENT, "system": "", "developer": ""}
    parts = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in roles:
            raise ApiError(400, f"each message needs a role in {sorted(roles)}", param="messages")
        content = message.get("content")
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            content = "".join(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
        if not isinstance(content, str):
            raise ApiError(400, "message content must be text", param="messages")
        role = roles[message["role"]]
        parts.append(turn(role, content.strip()) if role else content.strip())
    return transcript(parts)


class ModelService:
    """The API's logic, without HTTP: validate a request, batch it with others, shape the answer.

    ``engine`` is a ``DraftEngine`` (or anything with its ``specs``, ``run``, ``tokenize`` and
    ``context_window``).
    """

    def __init__(self, engine: Any, settings: EngineSettings | None = None) -> None:
        self.engine = engine
        self.settings = settings or EngineSettings()
        self.created = int(time.time())
        self.specs = {spec.name: spec for spec in engine.specs}
        bases = len({spec.base_key for spec in engine.specs})
        self.batcher: RequestBatcher[DraftRequest, Any] = RequestBatcher(
            engine.run,
            self.settings.max_batch_size * bases,
            self.settings.max_wait_seconds,
            name="serve-batcher",
        )

    def close(self) -> None:
        self.batcher.close(timeout=30)

    def models(self) -> dict[str, Any]:
        data = [
            {
                "id": spec.name,
                "object": "model",
                "created": self.created,
                "owned_by": "draftdesk",
                "root": spec.base_model,
                "parent": None,
                "max_model_len": self.engine.context_window(spec.name),
            }
            for spec in self.specs.values()
        ]
        return {"object": "list", "data": data}

    def _model(self, body: Mapping[str, Any]) -> str:
        name = body.get("model")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "model is required", param="model")
        if name not in self.specs:
            raise ApiError(
                404, f"The model `{name}` does not exist. Served: {sorted(self.specs)}", "NotFoundError"
            )
        return name

    def tokenize(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = self._model(body)
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise ApiError(400, "prompt must be a string", param="prompt")
        special = body.get("add_special_tokens", True)
        tokens = self.engine.tokenize(name, prompt, add_special_tokens=bool(special))
        return {"count": len(tokens), "max_model_len": self.engine.context_window(name), "tokens": tokens}

    def completions(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = self._model(body)
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ApiError(
                400,
                "prompt must be a string or a list of strings (token ids are not supported)",
                "invalid_request_error",
                "prompt",
            )
        requests = [self._request(name, p, body, "max_tokens") for p in prompts]
        results = self._run(requests)
        choices = [
            {"index": i, "text": text, "logprobs": None, "finish_reason": reason}
            for i, (text, reason) in enumerate(self._outputs(requests, results))
        ]
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": name,
            "choices": choices,
            "usage": self._usage(results),
        }

    def chat(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = self._model(body)
        limit_key = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        request = self._request(name, render_chat(body.get("messages")), body, limit_key)
        results = self._run([request])
        ((text, reason),) = self._outputs([request], results)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}
            ],
            "usage": self._usage(results),
        }

    def _request(self, name: str, prompt: str, body: Mapping[str, Any], limit_key: str) -> DraftRequest:
        for unsupported, allowed in _UNSUPPORTED.items():
            if body.get(unsupported) not in allowed:
                raise ApiError(
                    400, f"{unsupported}={body.get(unsupported)!r} is not supported", param=unsupported
                )
        spec = self.specs[name]

        def number(key: str, kind: type | tuple[type, ...]) -> Any:
            value = body.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
                raise ApiError(400, f"{key} must be a number", param=key)
            return value

        stop = body.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) and s for s in stop)):
            raise ApiError(400, "stop must be a string or a list of non-empty strings", param="stop")
        ignore_eos = body.get("ignore_eos", False)
        if not isinstance(ignore_eos, bool):
            raise ApiError(400, "ignore_eos must be true or false", param="ignore_eos")
        request = DraftRequest(
            name,
            prompt,
            max_new_tokens=number(limit_key, int),
            temperature=number("temperature", (int, float)),
            top_p=number("top_p", (int, float)),
            repetition_penalty=number("repetition_penalty", (int, float)),
            stop=tuple(stop) if stop is not None else None,
            seed=number("seed", int),
            ignore_eos=ignore_eos,
        )
        try:
            settings = request.settings_for(spec)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        window = self.engine.context_window(name)
        tokens = len(self.engine.tokenize(name, prompt))
        if tokens + settings.max_new_tokens > window:
            raise ApiError(
                400,
                f"This model's maximum context length is {window} tokens. However, you requested "
                f"{tokens + settings.max_new_tokens} tokens ({tokens} in the prompt, "
                f"{settings.max_new_tokens} in the completion).",
                param=limit_key,
            )
        return request

    def _run(self, requests: list[DraftRequest]) -> list[Any]:
        futures = [self.batcher.submit(request) for request in requests]
        try:
            results = [future.result(timeout=REQUEST_TIMEOUT_SECONDS) for future in futures]
        except Exception as exc:
            raise ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", "server_error") from exc
        failed = [r for r in results if r.error and r.error != NO_TEXT]
        if failed:
            raise ApiError(500, f"generation failed: {failed[0].error}", "server_error")
        return results

    def _outputs(self, requests: list[DraftRequest], results: list[Any]) -> list[tuple[str, str]]:
        outputs = []
        for request, result in zip(requests, results, strict=True):
            limit = request.settings_for(self.specs[request.model]).max_new_tokens
            reason = "length" if result.completion_tokens >= limit else "stop"
            outputs.append((result.text or "", reason))
        return outputs

    @staticmethod
    def _usage(results: list[Any]) -> dict[str, int]:
        prompt = sum(r.prompt_tokens for r in results)
        completion = sum(r.completion_tokens for r in results)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # the request line only, never headers
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        key = self.server.api_key
        if key is None:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())

    def _handle(self, routes: Mapping[str, Callable[..., dict[str, Any]]], with_body: bool) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            if path == "/health":
                self._send(200, {"ok": True})
                return
            if not self._authorized():
                raise ApiError(
                    401, "invalid or missing API key (Authorization: Bearer …)", "authentication_error"
                )
            if path not in routes:
                raise ApiError(404, f"no route {self.command} {path}", "not_found_error")
            answer = routes[path](self._body()) if with_body else routes[path]()
            self._send(200, answer)
        except ApiError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            self._send(exc.status, exc.body(), headers)
        except Exception as exc:
            log.exception("serve-models: %s %s failed", self.command, path)
            self._send(500, ApiError(500, f"{type(exc).__name__}: {exc}", "server_error").body())

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise ApiError(400, "bad Content-Length") from None
        if length > MAX_BODY_BYTES:
            raise ApiError(413, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        return body

    def do_GET(self) -> None:
        self._handle({"/v1/models": self.server.service.models}, with_body=False)

    def do_POST(self) -> None:
        service = self.server.service
        routes = {
            "/v1/completions": service.completions,
            "/v1/chat/completions": service.chat,
            "/tokenize": service.tokenize,
            "/v1/tokenize": service.tokenize,
        }
        self._handle(routes, with_body=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: ModelService, api_key: str | None) -> None:
        super().__init__(address, _Handler)
        self.service = service
        self.api_key = api_key


class ModelServer:
    """The HTTP server around a ``ModelService``; ``port=0`` picks a free port (tests)."""

    def __init__(
        self,
        engine: Any,
        settings: EngineSettings | None = None,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
    ) -> None:
        self.service = ModelService(engine, settings)
        self._server = _Server((host, port), self.service, api_key)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What a client's ``base_url`` should be, e.g. ``http://127.0.0.1:8000/v1``."""
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}/v1"

    def start(self) -> ModelServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="serve-models", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.service.close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------- command line


def register(sub: Any) -> None:
    """Add ``draftdesk serve-models`` to the CLI's subparsers."""
    parser = sub.add_parser(
        "serve-models", help="serve the local models over an OpenAI-compatible API (run it on the GPU box)"
    )
    parser.add_argument("--config", help="config file (default: $DRAFTDESK_CONFIG or ./config.toml)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--api-key-env",
        default=DEFAULT_API_KEY_ENV,
        help=f"environment variable with the bearer token clients must send (default: {DEFAULT_API_KEY_ENV})",
    )
    parser.add_argument(
        "--no-auth", action="store_true", help="accept requests without a token (loopback only)"
    )
    parser.add_argument("--models", help="comma-separated model names to serve (default: every local model)")
    parser.set_defaults(func=cmd_serve_models)


def cmd_serve_models(args: argparse.Namespace) -> int:
    from core.config import resolve_config_path
    from models.config import load_model_settings
    from models.engine import DraftEngine

    api_key = os.environ.get(args.api_key_env, "").strip() or None
    if args.no_auth and args.host not in ("127.0.0.1", "::1", "localhost"):
        print("draftdesk serve-models: --no-auth is for a loopback --host only", file=sys.stderr)
        return 2
    if api_key is None and not args.no_auth:
        print(
            f"draftdesk serve-models: {args.api_key_env} is not set: export a bearer token for clients "
            "(the bot reads it from the same variable), or pass --no-auth on a trusted loopback",
            file=sys.stderr,
        )
        return 2
    specs, settings = load_model_settings(resolve_config_path(args.config, os.environ))
    local = [spec for spec in specs if spec.backend == "local"]
    if args.models:
        wanted = [name.strip() for name in args.models.split(",") if name.strip()]
        unknown = sorted(set(wanted) - {spec.name for spec in local})
        if unknown:
            print(f"draftdesk serve-models: no local model named {unknown} in the config", file=sys.stderr)
            return 2
        local = [spec for spec in local if spec.name in wanted]
    if not local:
        print(
            "draftdesk serve-models: the config has no model with backend = 'local' to serve", file=sys.stderr
        )
        return 2
    engine = DraftEngine(local, settings=settings)
    log.info("loading %s model(s) on %s", len(local), engine.device)
    engine.load()
    server = ModelServer(engine, settings, args.host, args.port, api_key)
    log.info(
        "serving %s at %s (auth: %s)",
        ", ".join(spec.name for spec in local),
        server.base_url,
        "bearer token" if api_key else "none",
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


__all__ = ["ApiError", "ModelServer", "ModelService", "cmd_serve_models", "register", "render_chat"]

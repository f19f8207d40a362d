"""The `openai` backend against a scripted OpenAI-compatible server on loopback: retries, timeouts,
errors, API keys, clean-up of what a server like vLLM returns. No models involved."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from models.openai_backend import OpenAIBackend, RemoteModelError, api_root
from models.spec import ModelSpec

Reply = tuple[int, dict[str, Any]]


class Script:
    """What the stub answers: ``reply(path, body, attempt)`` → (status, JSON); records requests."""

    def __init__(self, reply: Callable[[str, dict[str, Any], int], Reply]) -> None:
        self.reply = reply
        self.requests: list[tuple[str, dict[str, Any], str | None]] = []
        self.lock = threading.Lock()


def completion(text: str, finish_reason: str = "stop", completion_tokens: int = 5) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}],
        "usage": {
            "prompt_tokens": 11,
            "completion_tokens": completion_tokens,
            "total_tokens": 11 + completion_tokens,
        },
    }


@pytest.fixture
def stub() -> Iterator[tuple[str, Callable[[Callable[[str, dict[str, Any], int], Reply]], Script]]]:
    holder: dict[str, Script] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            script = holder["script"]
            with script.lock:
                script.requests.append((self.path, body, self.headers.get("Authorization")))
                attempt = sum(1 for p, _, _ in script.requests if p == self.path)
            status, answer = script.reply(self.path, body, attempt)
            data = json.dumps(answer).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        do_GET = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def install(reply: Callable[[str, dict[str, Any], int], Reply]) -> Script:
        holder["script"] = Script(reply)
        return holder["script"]

    yield f"http://127.0.0.1:{server.server_address[1]}/v1", install
    server.shutdown()
    server.server_close()


def spec(base_url: str, name: str = "llama2-7b-ft", **settings: Any) -> ModelSpec:
    return ModelSpec(name, backend="openai", base_url=base_url, **settings)


def test_sends_the_model_settings_and_cleans_the_reply(stub: Any) -> None:
    base_url, install = stub
    # Like vLLM at the token limit: leading space, a half sentence at the end.
    script = install(
        lambda path, body, n: (200, completion(" Hello Maria! Your refund is on its way. We also", "length"))
    )
    backend = OpenAIBackend(
        [
            spec(
                base_url, remote_model="ft-adapter", stop=("\nCustomer:",), seed=3, temperature=0.7, top_p=0.9
            )
        ],
        env={"DRAFTDESK_MODELS_API_KEY": "sk-secret"},
    )
    try:
        (result,) = backend.generate({"llama2-7b-ft": "Customer: refund?\n\nAgent:"})
    finally:
        backend.close()
    assert result.ok and result.text == "Hello Maria! Your refund is on its way."
    assert (result.prompt_tokens, result.completion_tokens) == (11, 5)
    path, body, auth = script.requests[0]
    assert path == "/v1/completions" and auth == "Bearer sk-secret"
    assert body["model"] == "ft-adapter"  # vLLM: the LoRA module's name is the model
    assert body["prompt"] == "Customer: refund?\n\nAgent:"
    assert body["max_tokens"] == 256 and body["temperature"] == 0.7 and body["top_p"] == 0.9
    assert body["stop"] == ["\nCustomer:"] and body["seed"] == 3
    assert body["repetition_penalty"] == 1.1  # vLLM's extension, sent in the body


def test_server_errors_are_retried_with_backoff(stub: Any) -> None:
    base_url, install = stub
    script = install(
        lambda path, body, n: (
            (503, {"error": {"message": "warming up"}}) if n <= 2 else (200, completion("Done."))
        )
    )
    backend = OpenAIBackend([spec(base_url, max_retries=3)])
    try:
        (result,) = backend.generate({"llama2-7b-ft": "hi"})
    finally:
        backend.close()
    assert result.ok and result.text == "Done."
    assert len(script.requests) == 3  # two 503s, then the answer


def test_retries_run_out_into_a_clear_error(stub: Any) -> None:
    base_url, install = stub
    script = install(lambda path, body, n: (500, {"error": {"message": "CUDA out of memory"}}))
    backend = OpenAIBackend([spec(base_url, max_retries=1), spec(base_url, name="other", max_retries=1)])
    try:
        results = backend.generate_many([{"llama2-7b-ft": "a", "other": "b"}, {"other": "c"}])
    finally:
        backend.close()
    assert [[r.model for r in t] for t in results] == [["llama2-7b-ft", "other"], ["other"]]
    first = results[0][0]
    assert first.text is None
    assert first.error == f"model 'llama2-7b-ft' ('llama2-7b-ft' at {base_url}): HTTP 500: CUDA out of memory"
    assert len(script.requests) == 3 * 2  # three drafts, each tried twice


def test_client_errors_are_not_retried(stub: Any) -> None:
    base_url, install = stub
    script = install(lambda path, body, n: (400, {"error": {"message": "prompt too long"}}))
    backend = OpenAIBackend([spec(base_url, max_retries=3)])
    try:
        (result,) = backend.generate({"llama2-7b-ft": "hi"})
    finally:
        backend.close()
    assert "HTTP 400: prompt too long" in (result.error or "")
    assert len(script.requests) == 1


def test_a_slow_server_times_out(stub: Any) -> None:
    """The client gives up after timeout_seconds while the server is still holding its answer."""
    base_url, install = stub
    answered = threading.Event()
    release = threading.Event()

    def slow(path: str, body: dict[str, Any], n: int) -> Reply:
        # Answers only once the test has seen the client give up (or after 30 s, a failing test).
        release.wait(timeout=30)
        answered.set()
        return 200, completion("late")

    script = install(slow)
    backend = OpenAIBackend([spec(base_url, timeout_seconds=0.3, max_retries=0)])
    try:
        started = time.monotonic()
        (result,) = backend.generate({"llama2-7b-ft": "hi"})
        waited = time.monotonic() - started
        assert not answered.is_set()  # the draft's error came before any answer existed
    finally:
        release.set()
        backend.close()
    assert result.text is None and "timed out after 0.3s" in (result.error or "")
    assert 0.3 <= waited < 10
    assert len(script.requests) == 1  # max_retries=0: the timed-out request is not sent again


def test_an_unreachable_server_is_a_draft_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens there
    backend = OpenAIBackend([spec(f"http://127.0.0.1:{port}/v1", max_retries=0)])
    try:
        (result,) = backend.generate({"llama2-7b-ft": "hi"})
        with pytest.raises(ValueError, match="cannot connect") as info:  # the worker: this model failed
            backend.count_tokens("llama2-7b-ft", "hi")
        assert isinstance(info.value, RemoteModelError)
    finally:
        backend.close()
    assert result.text is None and "cannot connect" in (result.error or "")


def test_tokens_and_context_window_like_vllm(stub: Any) -> None:
    base_url, install = stub

    def reply(path: str, body: dict[str, Any], n: int) -> Reply:
        if path == "/tokenize":
            return 200, {"count": len(body["prompt"].split()) + 1, "max_model_len": 4096, "tokens": []}
        if path == "/v1/models":
            return 200, {"object": "list", "data": [{"id": "llama2-7b-ft", "max_model_len": 4096}]}
        return 404, {"error": {"message": "no"}}

    script = install(reply)
    backend = OpenAIBackend(
        [spec(base_url, max_new_tokens=256), spec(base_url, name="capped", max_input_tokens=900)]
    )
    try:
        assert backend.count_tokens("llama2-7b-ft", "three words here") == 4
        assert backend.context_limit("llama2-7b-ft") == 4096 - 256
        assert backend.context_limit("capped") == 900  # configured: no request
    finally:
        backend.close()
    assert [p for p, _, _ in script.requests] == ["/tokenize"]  # the window came with the count
    assert script.requests[0][1] == {
        "model": "llama2-7b-ft",
        "prompt": "three words here",
        "add_special_tokens": True,
    }


def test_context_window_from_the_model_list(stub: Any) -> None:
    base_url, install = stub
    install(lambda path, body, n: (200, {"object": "list", "data": [{"id": "other", "max_model_len": 2048}]}))
    backend = OpenAIBackend([spec(base_url, remote_model="other", max_new_tokens=48)])
    try:
        assert backend.context_limit("llama2-7b-ft") == 2000
    finally:
        backend.close()


def test_api_key_env_must_be_set_when_named() -> None:
    named = spec("http://127.0.0.1:9/v1", api_key_env="VLLM_KEY")
    with pytest.raises(RemoteModelError, match=r"VLLM_KEY.*not set"):
        OpenAIBackend([named], env={})
    # Without api_key_env, no key is fine (vLLM without --api-key).
    OpenAIBackend([spec("http://127.0.0.1:9/v1")], env={}).close()


def test_only_openai_specs_and_known_models() -> None:
    with pytest.raises(ValueError, match="backend = 'openai'"):
        OpenAIBackend([ModelSpec("local", "/models/x")])
    backend = OpenAIBackend([spec("http://127.0.0.1:9/v1")], env={})
    try:
        with pytest.raises(KeyError, match="unknown model"):
            backend.generate({"nope": "hi"})
    finally:
        backend.close()


def test_api_root() -> None:
    assert api_root("http://gpu:8000/v1") == "http://gpu:8000"
    assert api_root("http://gpu:8000/v1/") == "http://gpu:8000"
    assert api_root("https://models.example.com/api") == "https://models.example.com/api"

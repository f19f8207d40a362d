"""`draftdesk serve-models` on loopback, with the `openai` backend and the openai client as clients.

The server runs the real engine on the tiny NF4 + LoRA models; requests go over real HTTP.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from models.engine import DraftEngine
from models.openai_backend import OpenAIBackend, RemoteModelError
from models.serve import ModelServer, render_chat
from models.spec import EngineSettings, ModelSpec

KEY = "test-key-0123456789"
ENV = {"DRAFTDESK_MODELS_API_KEY": KEY}
MAX_NEW = 8
STOP = ("\nCustomer:",)
NAMES = ("llama-ft", "gptj-ft", "llama")
PROMPT = "Customer: My label printer prints blank labels since the update.\n\nAgent:"


def local_specs(models: dict[str, Path]) -> list[ModelSpec]:
    llama, gptj = str(models["llama_base"]), str(models["gptj_base"])
    settings: dict[str, Any] = {"max_new_tokens": MAX_NEW, "temperature": 0.0, "stop": STOP}
    return [
        ModelSpec("llama-ft", llama, str(models["llama_adapter"]), **settings),
        ModelSpec("gptj-ft", gptj, str(models["gptj_adapter"]), **settings),
        ModelSpec("llama", llama, **settings),
    ]


def remote_specs(base_url: str, **overrides: Any) -> list[ModelSpec]:
    settings: dict[str, Any] = {"max_new_tokens": MAX_NEW, "temperature": 0.0, "stop": STOP, "max_retries": 0}
    settings.update(overrides)
    return [ModelSpec(name, backend="openai", base_url=base_url, **settings) for name in NAMES]


class Served:
    def __init__(self, engine: DraftEngine, server: ModelServer) -> None:
        self.engine = engine
        self.server = server
        self.base_url = server.base_url


@pytest.fixture(scope="module")
def served(demo_models: dict[str, Path]) -> Iterator[Served]:
    engine = DraftEngine(local_specs(demo_models), device="cpu")
    engine.load()
    # Three rows per base and call; a request waits up to 1 s for the others of its batch.
    settings = EngineSettings(max_batch_size=3, max_wait_seconds=1.0)
    with ModelServer(engine, settings, port=0, api_key=KEY) as server:
        yield Served(engine, server)
    engine.close()


@pytest.fixture
def backend(served: Served) -> Iterator[OpenAIBackend]:
    remote = OpenAIBackend(remote_specs(served.base_url), env=ENV)
    yield remote
    remote.close()


def http(method: str, url: str, body: Any = None, token: str | None = KEY) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_remote_drafts_match_the_local_engine(served: Served, backend: OpenAIBackend) -> None:
    batch = [
        {name: PROMPT for name in ("gptj-ft", "llama", "llama-ft")},
        {"llama": "Customer: How do I cancel?\n\nAgent:", "llama-ft": "Customer: Refund please\n\nAgent:"},
    ]
    local = served.engine.generate_many(batch)
    sizes_before = len(served.server.service.batcher.batch_sizes)
    remote = backend.generate_many(batch)
    # One result list per ticket, in spec order, token for token what the engine itself drafts.
    assert [[r.model for r in t] for t in remote] == [list(NAMES), ["llama-ft", "llama"]]
    assert [[(r.model, r.text, r.completion_tokens) for r in t] for t in remote] == [
        [(r.model, r.text, r.completion_tokens) for r in t] for t in local
    ]
    assert all(r.ok for t in remote for r in t)
    # The five concurrent requests were gathered into one engine batch (its limit: 3 rows x 2 bases).
    assert served.server.service.batcher.batch_sizes[sizes_before:] == [5]


def test_token_counts_and_context_limit_come_from_the_server(served: Served, backend: OpenAIBackend) -> None:
    for name in NAMES:
        assert backend.count_tokens(name, PROMPT) == served.engine.count_tokens(name, PROMPT)
        assert backend.context_limit(name) == served.engine.context_limit(name)
    status, body = http(
        "POST", served.base_url.removesuffix("/v1") + "/tokenize", {"model": "llama", "prompt": "hi"}
    )
    assert status == 200
    assert body["count"] == len(body["tokens"]) == served.engine.count_tokens("llama", "hi")
    assert body["max_model_len"] == served.engine.context_window("llama")


def test_bearer_token_is_required(served: Served) -> None:
    assert http("GET", served.base_url.removesuffix("/v1") + "/health", token=None)[0] == 200
    for token in (None, "wrong-key"):
        status, body = http("GET", served.base_url + "/models", token=token)
        assert status == 401
        assert body["error"]["type"] == "authentication_error"
    wrong = OpenAIBackend(remote_specs(served.base_url), env={"DRAFTDESK_MODELS_API_KEY": "wrong-key"})
    try:
        results = wrong.generate({"llama": PROMPT})
    finally:
        wrong.close()
    assert results[0].text is None and "HTTP 401" in (results[0].error or "")
    assert "wrong-key" not in (results[0].error or "")


def test_openai_client_speaks_to_it(served: Served) -> None:
    client = openai.OpenAI(api_key=KEY, base_url=served.base_url, max_retries=0)
    models = client.models.list()
    assert sorted(m.id for m in models.data) == sorted(NAMES)
    completion = client.completions.create(model="llama-ft", prompt=[PROMPT, PROMPT + " Hi"], max_tokens=4)
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.usage is not None and 0 < completion.usage.completion_tokens <= 8
    chat = client.chat.completions.create(
        model="gptj-ft",
        messages=[
            {"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": "My parcel is late."},
        ],
        max_tokens=4,
        temperature=0,
    )
    choice = chat.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    client.close()


def test_chat_messages_become_the_transcript() -> None:
    prompt = render_chat(
        [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "Refund"},
        ]
    )
    assert prompt == "Be kind.\n\nCustomer: Hello\n\nAgent: Hi! How can I help?\n\nCustomer: Refund\n\nAgent:"


def test_bad_requests_get_openai_errors(served: Served) -> None:
    client = openai.OpenAI(api_key=KEY, base_url=served.base_url, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.completions.create(model="gpt-4", prompt="hi")
    with pytest.raises(openai.BadRequestError, match="stream"):
        client.completions.create(model="llama", prompt="hi", stream=True)
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        client.completions.create(model="llama", prompt="refund " * 600, max_tokens=8)
    with pytest.raises(openai.BadRequestError, match="top_p"):
        client.completions.create(model="llama", prompt="hi", top_p=0)
    client.close()
    status, body = http("POST", served.base_url + "/completions", None)
    assert status == 400 and "model is required" in body["error"]["message"]


def test_a_model_the_server_lacks_fails_alone(served: Served) -> None:
    specs = [*remote_specs(served.base_url), ModelSpec("missing", backend="openai", base_url=served.base_url)]
    remote = OpenAIBackend(specs, env=ENV)
    try:
        results = remote.generate({"llama": PROMPT, "missing": PROMPT})
        with pytest.raises(RemoteModelError, match=r"'missing'.*does not serve it"):
            remote.context_limit("missing")
    finally:
        remote.close()
    by_model = {r.model: r for r in results}
    assert by_model["llama"].ok
    assert by_model["missing"].text is None and "HTTP 404" in (by_model["missing"].error or "")


def test_a_lone_request_does_not_wait_for_a_full_batch(demo_models: dict[str, Path]) -> None:
    engine = DraftEngine(local_specs(demo_models)[2:], device="cpu")
    # A batch could hold 64 rows; the one request must still be answered after the short wait.
    with ModelServer(
        engine, EngineSettings(max_batch_size=64, max_wait_seconds=0.05), port=0, api_key=KEY
    ) as server:
        done = threading.Event()
        answer: list[tuple[int, dict[str, Any]]] = []

        def call() -> None:
            answer.append(
                http("POST", server.base_url + "/completions", {"model": "llama", "prompt": PROMPT})
            )
            done.set()

        threading.Thread(target=call, daemon=True).start()
        assert done.wait(120), "the request never came back"
        assert server.service.batcher.batch_sizes == [1]
    engine.close()
    status, body = answer[0]
    assert status == 200 and body["choices"][0]["finish_reason"] in ("stop", "length")


def test_serve_models_command_refuses_to_run_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from draftdesk.cli import main

    config = tmp_path / "gpu.toml"
    config.write_text('[[models]]\nname = "remote"\nbackend = "openai"\nbase_url = "http://gpu:8000/v1"\n')
    monkeypatch.delenv("DRAFTDESK_MODELS_API_KEY", raising=False)
    assert main(["serve-models", "--config", str(config)]) == 2
    assert "DRAFTDESK_MODELS_API_KEY is not set" in capsys.readouterr().err
    assert main(["serve-models", "--config", str(config), "--no-auth", "--host", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err
    monkeypatch.setenv("DRAFTDESK_MODELS_API_KEY", KEY)
    assert main(["serve-models", "--config", str(config)]) == 2  # nothing local to serve
    assert "no model with backend = 'local'" in capsys.readouterr().err

"""Drafts from an OpenAI-compatible server: vLLM, ``draftdesk serve-models``, or any other.

Each draft is one ``/v1/completions`` request (the prompt is a plain transcript, not a chat),
sent concurrently so the server can batch them (vLLM batches continuously, ``serve-models``
gathers concurrent requests into one engine batch). The ``openai`` client does the timeouts and
the retries with exponential backoff (connection errors, 408, 409, 429 and 5xx answers).

Token counts come from a local tokenizer when the model's ``tokenizer`` is set, else from the
server's ``/tokenize`` (vLLM's endpoint, also served by ``serve-models``); the context window from
``max_model_len`` in ``/v1/models`` (both vLLM and ``serve-models`` report it), unless
``max_input_tokens`` is set.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai

from core.domain import DraftResult
from models.cleanup import clean_completion
from models.spec import DEFAULT_API_KEY_ENV, ModelSpec

log = logging.getLogger(__name__)

NO_KEY = "EMPTY"  # what vLLM's docs send when the server runs without --api-key


class RemoteModelError(RuntimeError, ValueError):
    """A remote model could not answer; the message names the model, the server and the cause.

    Also a ValueError: the worker treats a ValueError while building one model's prompt as that
    model's failure, so a server that is down fails its own drafts and not the whole ticket.
    """


def api_root(base_url: str) -> str:
    """``http://host:8000/v1`` → ``http://host:8000``: vLLM serves ``/tokenize`` at the root."""
    return re.sub(r"/v1/?$", "", base_url.rstrip("/"))


def describe_error(exc: BaseException, timeout: float, retries: int) -> str:
    """One line for an agent-facing note or a log: what failed, without the request's secrets."""
    if isinstance(exc, openai.APITimeoutError):
        return f"timed out after {timeout:g}s ({retries} retries)"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot connect ({retries} retries): {exc.__cause__ or exc}"
    if isinstance(exc, openai.APIStatusError):
        message = exc.message
        if isinstance(exc.body, dict):
            inner = exc.body.get("error", exc.body)
            message = inner.get("message", message) if isinstance(inner, dict) else message
        return f"HTTP {exc.status_code}: {message}"
    return f"{type(exc).__name__}: {exc}"


class OpenAIBackend:
    """The ``DraftBackend`` for models with ``backend = "openai"``.

    Results come in spec order (the order of ``specs``), like the local engine's. A model that
    fails (timeout, refused, server error after the retries) gives a DraftResult with ``error``.
    """

    def __init__(
        self,
        specs: Sequence[ModelSpec],
        env: Mapping[str, str] | None = None,
        max_concurrency: int = 32,
    ) -> None:
        wrong = [spec.name for spec in specs if spec.backend != "openai"]
        if wrong:
            raise ValueError(f"OpenAIBackend serves backend = 'openai' models only, not {wrong}")
        env = os.environ if env is None else env
        self.specs = tuple(specs)
        self._by_name = {spec.name: spec for spec in self.specs}
        self._clients: dict[str, openai.OpenAI] = {}
        shared: dict[tuple[str, str, float, int], openai.OpenAI] = {}
        for spec in self.specs:
            key = self._api_key(spec, env)
            assert spec.base_url is not None  # ModelSpec checks it for backend 'openai'
            ident = (spec.base_url, key, spec.timeout_seconds, spec.max_retries)
            if ident not in shared:
                shared[ident] = openai.OpenAI(
                    api_key=key,
                    base_url=spec.base_url,
                    timeout=spec.timeout_seconds,
                    max_retries=spec.max_retries,
                )
            self._clients[spec.name] = shared[ident]
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="openai-backend")
        self._windows: dict[str, int] = {}
        self._tokenizers: dict[str, Any] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _api_key(spec: ModelSpec, env: Mapping[str, str]) -> str:
        name = spec.api_key_env or DEFAULT_API_KEY_ENV
        value = env.get(name, "").strip()
        if not value and spec.api_key_env:
            raise RemoteModelError(
                f"model {spec.name!r}: api_key_env = {name!r} but that environment variable is not set: "
                "export the server's API key there"
            )
        return value or NO_KEY

    def _spec(self, model_name: str) -> ModelSpec:
        try:
            return self._by_name[model_name]
        except KeyError:
            raise KeyError(f"unknown model {model_name!r}; configured: {sorted(self._by_name)}") from None

    def _where(self, spec: ModelSpec) -> str:
        return f"model {spec.name!r} ({spec.served_name!r} at {spec.base_url})"

    # ------------------------------------------------------------------ tokens

    def count_tokens(self, model_name: str, text: str) -> int:
        """Prompt tokens of ``text`` for this model, BOS included, as the server's tokenizer counts."""
        spec = self._spec(model_name)
        if spec.tokenizer:
            return len(self._local_tokenizer(spec)(text, add_special_tokens=True)["input_ids"])
        body = {"model": spec.served_name, "prompt": text, "add_special_tokens": True}
        try:
            data = self._clients[spec.name].post(
                f"{api_root(spec.base_url or '')}/tokenize", cast_to=dict, body=body
            )
        except openai.OpenAIError as exc:
            raise RemoteModelError(
                f"{self._where(spec)}: counting tokens failed: "
                f"{describe_error(exc, spec.timeout_seconds, spec.max_retries)} "
                "(set tokenizer to count locally)"
            ) from exc
        if "max_model_len" in data:
            self._windows.setdefault(spec.name, int(data["max_model_len"]))
        return int(data["count"])

    def _local_tokenizer(self, spec: ModelSpec) -> Any:
        with self._lock:
            if spec.name not in self._tokenizers:
                from transformers import AutoTokenizer

                self._tokenizers[spec.name] = AutoTokenizer.from_pretrained(spec.tokenizer)
            return self._tokenizers[spec.name]

    def context_limit(self, model_name: str) -> int:
        """The most prompt tokens: max_input_tokens, else the server's max_model_len - max_new_tokens."""
        spec = self._spec(model_name)
        if spec.max_input_tokens is not None:
            return spec.max_input_tokens
        window = self._windows.get(spec.name) or self._fetch_window(spec)
        limit = window - spec.max_new_tokens
        if limit < 1:
            raise RemoteModelError(
                f"{self._where(spec)}: max_new_tokens={spec.max_new_tokens} leaves no room for a prompt "
                f"in its {window}-token context"
            )
        return limit

    def _fetch_window(self, spec: ModelSpec) -> int:
        try:
            data = self._clients[spec.name].get("/models", cast_to=dict)
        except openai.OpenAIError as exc:
            raise RemoteModelError(
                f"{self._where(spec)}: listing models failed: "
                f"{describe_error(exc, spec.timeout_seconds, spec.max_retries)}"
            ) from exc
        served = {m.get("id"): m for m in data.get("data", []) if isinstance(m, dict)}
        if spec.served_name not in served:
            raise RemoteModelError(
                f"{self._where(spec)}: the server does not serve it (it serves {sorted(map(str, served))}); "
                "set model to one of those"
            )
        window = served[spec.served_name].get("max_model_len")
        if not isinstance(window, int) or window < 1:
            raise RemoteModelError(
                f"{self._where(spec)}: the server does not report max_model_len; set max_input_tokens"
            )
        self._windows[spec.name] = window
        return window

    # ------------------------------------------------------------------ generation

    def generate(self, prompts: Mapping[str, str]) -> list[DraftResult]:
        """One draft per model named in ``prompts``, in spec order."""
        return self.generate_many([prompts])[0]

    def generate_many(self, batch: Sequence[Mapping[str, str]]) -> list[list[DraftResult]]:
        """One result list per ticket, each in spec order; all requests are in flight together."""
        for prompts in batch:
            unknown = sorted(set(prompts) - set(self._by_name))
            if unknown:
                raise KeyError(f"unknown model(s) {unknown}; configured: {sorted(self._by_name)}")
        futures = [
            [
                self._pool.submit(self._complete, spec, prompts[spec.name])
                for spec in self.specs
                if spec.name in prompts
            ]
            for prompts in batch
        ]
        return [[future.result() for future in ticket] for ticket in futures]

    def _complete(self, spec: ModelSpec, prompt: str) -> DraftResult:
        options: dict[str, Any] = {}
        if spec.stop:
            options["stop"] = list(spec.stop)
        if spec.seed is not None:
            options["seed"] = spec.seed
        if spec.repetition_penalty != 1.0:
            options["extra_body"] = {"repetition_penalty": spec.repetition_penalty}  # vLLM's extension
        try:
            completion = self._clients[spec.name].completions.create(
                model=spec.served_name,
                prompt=prompt,
                max_tokens=spec.max_new_tokens,
                temperature=spec.temperature,
                top_p=spec.top_p,
                **options,
            )
        except openai.OpenAIError as exc:
            error = f"{self._where(spec)}: {describe_error(exc, spec.timeout_seconds, spec.max_retries)}"
            log.warning("remote draft failed: %s", error)
            return DraftResult(spec.name, None, error=error)
        if not completion.choices:
            return DraftResult(spec.name, None, error=f"{self._where(spec)}: the server returned no choice")
        choice = completion.choices[0]
        usage = completion.usage
        # vLLM cuts at stop strings but returns a half sentence at the token limit: clean up the same
        # way the local engine does (idempotent on text that serve-models already cleaned).
        text = clean_completion(choice.text or "", spec.stop, truncated=choice.finish_reason == "length")
        return DraftResult(
            spec.name,
            text or None,
            error=None if text else "the model produced no text",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for client in {id(c): c for c in self._clients.values()}.values():
            client.close()


__all__ = ["OpenAIBackend", "RemoteModelError", "api_root", "describe_error"]


def server_problem(spec: ModelSpec, env: Mapping[str, str], timeout: float = 5.0) -> str | None:
    """Why the server of an ``openai`` model cannot draft now (``GET /v1/models``, one try), or None."""
    try:
        client = openai.OpenAI(
            api_key=OpenAIBackend._api_key(spec, env), base_url=spec.base_url, timeout=timeout, max_retries=0
        )
        data = client.get("/models", cast_to=dict)
    except (openai.OpenAIError, RemoteModelError) as exc:
        return f"{spec.base_url}: {describe_error(exc, timeout, 0)}"
    served = sorted(str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict))
    if spec.served_name not in served:
        return f"{spec.base_url} does not serve {spec.served_name!r} (it serves {served})"
    return None

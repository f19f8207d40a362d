"""What the bot configures about its models: one ``ModelSpec`` per draft, one ``EngineSettings``.

Pure data with validation, no torch: ``bot/config.py`` builds these from ``config.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch
DEFAULT_API_KEY_ENV = "DRAFTDESK_MODELS_API_KEY"

Quantization = Literal["nf4", "none"]
BackendKind = Literal["local", "openai"]
BACKENDS: tuple[str, ...] = ("local", "openai")


@dataclass(frozen=True)
class ModelSpec:
    """One draft model: where it runs, what it is, and its generation settings.

    ``backend = "local"``: a base (local path or downloaded hub id) with an optional LoRA adapter,
    run by the in-process engine. ``backend = "openai"``: any OpenAI-compatible server at
    ``base_url`` (vLLM, ``draftdesk serve-models``); ``remote_model`` is the model id there
    (default: ``name``), the API key is read from the environment variable ``api_key_env``.

    ``temperature`` 0 means greedy decoding. ``stop`` strings end the draft (e.g. ``"\\nCustomer:"``
    so the model does not write the customer's next turn); none here, but ``[[models]]`` in the
    config defaults to ``core.prompt.STOP_SEQUENCES``. ``max_input_tokens`` caps the prompt;
    without it the cap is the model's context window minus ``max_new_tokens``. ``seed`` makes
    sampling reproducible: every ``generate()`` call starts the model's sampler from it.
    """

    name: str
    base_model: str = ""
    adapter: str | None = None
    quantization: Quantization = "nf4"
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    stop: tuple[str, ...] = ()
    max_input_tokens: int | None = None
    seed: int | None = None
    backend: BackendKind = "local"
    base_url: str | None = None
    remote_model: str | None = None
    api_key_env: str | None = None  # None: DRAFTDESK_MODELS_API_KEY if set, else no key
    timeout_seconds: float = 120.0
    max_retries: int = 3
    tokenizer: str | None = None  # remote models: count tokens locally with this tokenizer

    def __post_init__(self) -> None:
        problems = []
        if not self.name or self.name == BASE_ADAPTER:
            problems.append(f"name must be non-empty and not {BASE_ADAPTER!r}")
        if self.backend not in BACKENDS:
            problems.append(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "local" and not self.base_model:
            problems.append("base_model must be a local path or a hub id")
        if self.backend == "openai" and not (self.base_url or "").startswith(("http://", "https://")):
            problems.append(f"base_url must be an http(s) URL for backend 'openai', got {self.base_url!r}")
        if self.quantization not in ("nf4", "none"):
            problems.append(f"quantization must be 'nf4' or 'none', got {self.quantization!r}")
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            problems.append(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            problems.append(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.max_input_tokens is not None and self.max_input_tokens < 1:
            problems.append(f"max_input_tokens must be >= 1, got {self.max_input_tokens}")
        if self.timeout_seconds <= 0:
            problems.append(f"timeout_seconds must be > 0, got {self.timeout_seconds}")
        if self.max_retries < 0:
            problems.append(f"max_retries must be >= 0, got {self.max_retries}")
        if problems:
            raise ValueError(f"model {self.name!r}: " + "; ".join(problems))

    @property
    def base_key(self) -> tuple[str, str]:
        return (self.base_model, self.quantization)

    @property
    def served_name(self) -> str:
        """The model id to request from an OpenAI-compatible server."""
        return self.remote_model or self.name


@dataclass(frozen=True)
class EngineSettings:
    """How the local engine batches (``[engine]`` in config.toml).

    Limits apply per base model and per ``generate()`` call on it: rows beyond them go into further
    calls. ``max_batch_tokens`` bounds rows × (longest prompt + most new tokens) in one call, i.e.
    the KV cache the call can grow to. ``max_wait_seconds`` is how long ``serve-models`` holds a
    request for others to join its batch.
    """

    max_batch_size: int = 32
    max_batch_tokens: int = 32768
    max_wait_seconds: float = 0.05
    device: str | None = None  # None: cuda if available, else cpu

    def __post_init__(self) -> None:
        problems = []
        if self.max_batch_size < 1:
            problems.append(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.max_batch_tokens < 1:
            problems.append(f"max_batch_tokens must be >= 1, got {self.max_batch_tokens}")
        if self.max_wait_seconds < 0:
            problems.append(f"max_wait_seconds must be >= 0, got {self.max_wait_seconds}")
        if problems:
            raise ValueError("engine: " + "; ".join(problems))


@dataclass(frozen=True)
class DraftRequest:
    """One prompt for one model, with optional per-request overrides of the model's settings.

    The bot sends plain prompts (the model's configured settings apply); ``serve-models`` passes on
    the settings of an OpenAI request. ``ignore_eos`` generates exactly ``max_new_tokens`` tokens
    (benchmarks), like vLLM's parameter of that name.
    """

    model: str
    prompt: str
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    ignore_eos: bool = False

    def settings_for(self, spec: ModelSpec) -> ModelSpec:
        """``spec`` with this request's overrides; raises ValueError for an invalid value."""
        names = ("max_new_tokens", "temperature", "top_p", "repetition_penalty", "stop", "seed")
        overrides = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        return replace(spec, **overrides) if overrides else spec


__all__ = ["BASE_ADAPTER", "DEFAULT_API_KEY_ENV", "DraftRequest", "EngineSettings", "ModelSpec"]


ADAPTER_POINTER = "LATEST"  # written by `draftdesk finetune train` next to its versioned adapters


def resolve_adapter_dir(path: str | Path) -> Path:
    """An adapter folder, or a model's adapters folder whose LATEST file names the version to use.

    So `adapter = "./adapters/llama2-7b-ft"` follows each retraining without editing the config.
    """
    folder = Path(path).expanduser()
    pointer = folder / ADAPTER_POINTER
    if not (folder / "adapter_config.json").is_file() and pointer.is_file():
        return folder / pointer.read_text(encoding="utf-8").strip()
    return folder
